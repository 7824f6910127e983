"""A Hugging Face `tokenizer.json` for a sentencepiece BPE model, built without protobuf.

MAX's server reads tokenizers through transformers, which needs
`tokenizer.json` for stories260K (whose repo has only `tok512.model`); the
usual converter imports sentencepiece's protobuf module, which clashes with
the protobuf that `max[serve]` pins. Tests check the result against
sentencepiece itself.
"""

from __future__ import annotations

from pathlib import Path


def save_hf_tokenizer(model_file: Path, folder: Path) -> None:
    """Writes tokenizer.json (+ config) for a Llama-style sentencepiece BPE `model_file` into `folder`."""
    import sentencepiece
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    # A BPE merge for every way a piece splits into two pieces; earlier (higher-scored) pieces merge first.
    merges = sorted(
        ((piece[:cut], piece[cut:], rank) for piece, rank in vocab.items() for cut in range(1, len(piece))
         if piece[:cut] in vocab and piece[cut:] in vocab),
        key=lambda m: (m[2], vocab[m[0]], vocab[m[1]]),
    )
    bos, eos, unk = sp.id_to_piece(sp.bos_id()), sp.id_to_piece(sp.eos_id()), sp.id_to_piece(sp.unk_id())
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for a, b, _ in merges], unk_token=unk,
                                     fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([  # sentencepiece's default: trim, collapse runs of spaces
        normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Prepend("▁"), normalizers.Replace(" ", "▁"),
    ])
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, sp.bos_id())])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, unk_token=unk).save_pretrained(str(folder))
