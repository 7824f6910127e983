"""Model configs: the fields the engine needs, the knobs of a decoder block, and typed reads of config.json.

`ModelConfig` holds what every model has (sizes, heads, context, special
tokens). `DecoderConfig` adds every knob the shared decoder builder
(`zoo.core.blocks.decoder`) understands; an architecture's config subclasses
it and fills the knobs from the HF `config.json` in `from_hf`, reading each
field through `HFFields`, which checks its type and range and names the field
in the error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from .errors import ConfigError

if TYPE_CHECKING:
    from .blocks.rope import RotarySpec

# Sane upper bounds for sizes read from a config: anything above is a corrupt or hostile file.
LIMITS = {
    "vocab": 1 << 22,
    "hidden": 1 << 16,
    "layers": 1024,
    "heads": 1024,
    "head_dim": 2048,
    "inner": 1 << 19,
    "context": 1 << 24,
    "experts": 4096,
}


GENERATION_FIELDS = {"eos_token_ids", "bos_token_id"}  # read by generation, not by the graph


class ModelConfig(BaseModel):
    """Fields the shared engine needs; architectures subclass and add their own.

    Subclasses implement `from_hf`, turning a HF `config.json` dict into the
    config, and raise `ConfigError`/`UnsupportedModelError` for configs they
    cannot run exactly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vocab_size: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    eos_token_ids: tuple[int, ...] = ()
    bos_token_id: int | None = None

    @classmethod
    def from_hf(cls, hf: Mapping[str, Any]) -> "ModelConfig":
        raise NotImplementedError

    def graph_json(self) -> str:
        """The config as JSON, less what only generation reads (the BOS and EOS ids): the
        part of it that shapes a compiled graph."""
        return self.model_dump_json(exclude=GENERATION_FIELDS)

    def parameter_count(self) -> int | None:
        """Number of parameters, when the architecture can tell from the config."""
        return None

    def check(self) -> None:
        """Raises ConfigError for knobs out of range or inconsistent; subclasses add theirs."""

    @property
    def has_sliding_window(self) -> bool:
        """Whether some layer attends over a sliding window (the graph then takes a second mask)."""
        return False

    @property
    def rope_switch_position(self) -> int | None:
        """LongRoPE: the position from which a sequence runs on the long frequencies. A sequence
        that crosses it is recomputed whole, as transformers recomputes it; None: no switch."""
        return None


AttentionKind = Literal["full", "sliding"]


class DecoderConfig(ModelConfig):
    """A decoder-only transformer as the shared builder assembles it; defaults are Llama's.

    Each layer: token embedding (times `embedding_multiplier`), then blocks of
    attention and feed-forward with residuals, a final norm, the output
    projection (tied or not), `logits_multiplier` and an optional final soft-cap.
    """

    intermediate_size: int
    # normalisation: RMSNorm or LayerNorm; Gemma scales by (1 + w)
    norm: Literal["rms", "layer"] = "rms"
    norm_eps: float = 1e-6
    norm_weight_offset: float = 0.0
    norm_bias: bool = True
    """LayerNorm only: whether the norms carry a bias."""
    norm_placement: Literal["pre", "post", "sandwich"] = "pre"
    """pre: x + f(norm(x)); post: x + norm(f(x)) (OLMo 2); sandwich: x + norm(f(norm(x))) (Gemma)."""
    parallel_residual: bool = False
    """x + attn(norm1(x)) + mlp(norm2(x)) in one step (GPT-NeoX)."""
    residual_multiplier: float = 1.0
    embedding_multiplier: float = 1.0
    logits_multiplier: float = 1.0
    final_softcap: float | None = None
    tie_word_embeddings: bool = False
    # attention
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: Literal["none", "head", "projection"] = "none"
    """RMSNorm on queries and keys before rotary: per head (Qwen 3, Gemma 3) or over the whole projection (OLMo 2)."""
    attention_scale: float | None = None
    """Score scale; None means 1 / sqrt(head_dim)."""
    attention_softcap: float | None = None
    sliding_window: int | None = None
    layer_types: tuple[AttentionKind, ...] = ()
    """Per layer: full or sliding-window attention; empty means all full."""
    # positions
    positions: Literal["rotary", "learned"] = "rotary"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] = {}
    """HF rope-scaling parameters (`rope_type`, `factor`, ...); empty for plain rope."""
    local_rope_theta: float | None = None
    """Sliding-window layers' rope base (Gemma 3), unscaled; None: the same rope as full layers."""
    rotary_dim: int | None = None
    """Dimensions of each head that rotate (partial rotary); None: all of them."""
    # feed-forward
    mlp: Literal["gated", "plain"] = "gated"
    """gated: down(act(gate(x)) * up(x)); plain: down(act(up(x)))."""
    activation: Literal["silu", "gelu_tanh", "gelu"] = "silu"
    mlp_bias: bool = False
    # mixture of experts
    n_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int | None = None
    normalize_expert_weights: bool = True
    moe_layers: tuple[bool, ...] = ()
    """Per layer: a mixture of experts (True) or the dense feed-forward; empty: every layer if n_experts."""

    @property
    def has_sliding_window(self) -> bool:
        return self.sliding_window is not None and any(self.layer_kind(i) == "sliding" for i in range(self.n_layers))

    @property
    def rope_switch_position(self) -> int | None:
        if self.positions != "rotary" or self.rope_scaling.get("rope_type") != "longrope":
            return None
        return self.rotary("full").long_after

    def layer_kind(self, index: int) -> AttentionKind:
        if self.sliding_window is None:
            return "full"
        return self.layer_types[index] if self.layer_types else "sliding"

    def is_moe_layer(self, index: int) -> bool:
        if not self.n_experts:
            return False
        return self.moe_layers[index] if self.moe_layers else True

    @property
    def score_scale(self) -> float:
        return self.attention_scale if self.attention_scale is not None else 1.0 / math.sqrt(self.head_dim)

    def rotary(self, kind: AttentionKind = "full") -> RotarySpec:
        """Rotary parameters for a layer of `kind`, with the checkpoint's rope scaling."""
        from zoo.core.blocks.rope import rotary_spec

        dim = self.rotary_dim or self.head_dim
        if kind == "sliding" and self.local_rope_theta is not None:
            return rotary_spec(dim, self.local_rope_theta)
        return rotary_spec(dim, self.rope_theta, self.rope_scaling, self.context_length)

    def inv_freq(self, kind: AttentionKind = "full") -> list[float]:
        """The rotary inverse frequencies of a layer of `kind` (LongRoPE: the short ones)."""
        return list(self.rotary(kind).inv_freq)

    def parameter_count(self) -> int:
        e, d = self.hidden_size, self.head_dim
        q, kv = self.n_heads * d, self.n_kv_heads * d
        norm = e * (2 if self.norm == "layer" and self.norm_bias else 1)
        attention = e * (q + 2 * kv) + q * e
        attention += (q + 2 * kv if self.qkv_bias else 0) + (e if self.o_bias else 0)
        attention += {"none": 0, "head": 2 * d, "projection": q + kv}[self.qk_norm]
        norms = norm * (4 if self.norm_placement == "sandwich" else 2)
        total = self.vocab_size * e * (1 if self.tie_word_embeddings else 2) + norm
        if self.positions == "learned":
            total += self.context_length * e
        for index in range(self.n_layers):
            total += attention + norms + self._feed_forward_parameters(index)
        return total

    def active_parameter_count(self) -> int:
        """Parameters used per token: with a mixture of experts, only `experts_per_token` experts."""
        unused = 0
        inner = self.expert_intermediate_size or self.intermediate_size
        for index in range(self.n_layers):
            if self.is_moe_layer(index):
                unused += (self.n_experts - self.experts_per_token) * 3 * self.hidden_size * inner
        return self.parameter_count() - unused

    def check(self) -> None:
        """Every knob in range and consistent with the others, and the rotary frequencies
        finite, so that a config that passes builds the model it describes."""
        super().check()
        n = self.n_layers
        _bounded("intermediate_size", self.intermediate_size, 1, LIMITS["inner"])
        _finite("norm_eps", self.norm_eps, positive=True)
        for name in ("residual_multiplier", "embedding_multiplier", "logits_multiplier", "rope_theta"):
            _finite(name, getattr(self, name), positive=name == "rope_theta")
        for name in ("final_softcap", "attention_scale", "attention_softcap", "local_rope_theta"):
            if getattr(self, name) is not None:
                _finite(name, getattr(self, name), positive=True)
        if self.layer_types and len(self.layer_types) != n:
            raise ConfigError(f"layer_types has {len(self.layer_types)} entries for {n} layers")
        if self.moe_layers and len(self.moe_layers) != n:
            raise ConfigError(f"the mixture-of-experts layer list has {len(self.moe_layers)} entries for {n} layers")
        if self.sliding_window is not None:
            _bounded("sliding_window", self.sliding_window, 1, LIMITS["context"])
        if self.n_experts:
            _bounded("the expert count", self.n_experts, 1, LIMITS["experts"])
            _bounded("experts per token", self.experts_per_token, 1, self.n_experts)
            if self.expert_intermediate_size is not None:
                _bounded("expert_intermediate_size", self.expert_intermediate_size, 1, LIMITS["inner"])
        elif self.experts_per_token or any(self.moe_layers):
            raise ConfigError("experts per token or mixture-of-experts layers are set without experts")
        if self.rotary_dim is not None:
            _bounded("rotary_dim", self.rotary_dim, 2, self.head_dim)
            if self.rotary_dim % 2:
                raise ConfigError(f"rotary_dim must be even, got {self.rotary_dim}")
        if self.positions == "rotary":
            self._check_rotary()

    def _check_rotary(self) -> None:
        from zoo.core.blocks.rope import check_spec

        kinds: list[AttentionKind] = ["full"] + (["sliding"] if self.has_sliding_window else [])
        for kind in kinds:
            check_spec(lambda: self.rotary(kind), self.rope_scaling.get("rope_type", "default"))

    def _feed_forward_parameters(self, index: int) -> int:
        e = self.hidden_size
        if self.is_moe_layer(index):
            inner = self.expert_intermediate_size or self.intermediate_size
            return self.n_experts * 3 * e * inner + e * self.n_experts
        i = self.intermediate_size
        if self.mlp == "gated":
            return 3 * e * i + (2 * i + e if self.mlp_bias else 0)
        return 2 * e * i + (i + e if self.mlp_bias else 0)


def eos_ids(value: Any) -> tuple[int, ...]:
    """Normalises HF's `eos_token_id` (an int, a list or null) to a tuple of non-negative ids."""
    if value is None:
        return ()
    ids = [value] if isinstance(value, int) else value
    if (
        isinstance(value, bool) or not isinstance(ids, (list, tuple))
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ids)
    ):
        raise ConfigError(f"config.json: eos_token_id must be a non-negative integer or a list of them, got {show(value)}")
    return tuple(ids)


def show(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut short for messages (a hostile config can hold huge values)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bounded(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {show(value)}")


def _finite(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or (positive and value <= 0):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'finite'} number, got {show(value)}")


_MISSING: Any = object()


class HFFields:
    """Typed, range-checked reads of a HF `config.json` dict; errors name the field and its value.

    `family` names the model kind in the messages ("a Llama model needs ...").
    """

    def __init__(self, hf: Mapping[str, Any], family: str) -> None:
        if not isinstance(hf, Mapping):
            raise ConfigError(f"config.json must be a JSON object, got {type(hf).__name__}")
        self.hf = hf
        self.family = family

    def raw(self, name: str, default: Any = None) -> Any:
        value = self.hf.get(name, default)
        return default if value is None else value

    def _get(self, names: str | Sequence[str], default: Any) -> tuple[str, Any]:
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            if self.hf.get(name) is not None:
                return name, self.hf[name]
        if default is _MISSING:
            raise ConfigError(f"config.json lacks {names[0]!r}, which {self.family} model needs")
        return names[0], default

    def integer(self, names: str | Sequence[str], default: Any = _MISSING, *, low: int = 1, limit: str | None = None) -> int:
        """An integer field, at least `low` and at most `LIMITS[limit]`."""
        name, value = self._get(names, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config.json: {name} must be an integer, got {show(value)}")
        high = LIMITS[limit] if limit else None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"config.json: {name} must be {bound}, got {show(value)}")
        return value

    def size(self, names: str | Sequence[str], limit: str, default: Any = _MISSING) -> int:
        """A positive size bounded by `LIMITS[limit]`."""
        return self.integer(names, default, low=1, limit=limit)

    def optional_size(self, names: str | Sequence[str], limit: str) -> int | None:
        name, value = self._get(names, None)
        return None if value is None else self.integer(name, limit=limit)

    def number(
        self, names: str | Sequence[str], default: Any = _MISSING, *, low: float | None = None,
        high: float | None = None, positive: bool = False,
    ) -> float:
        """A finite number, optionally bounded (`positive`: > 0)."""
        name, value = self._get(names, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"config.json: {name} must be a finite number, got {show(value)}")
        if positive and value <= 0:
            raise ConfigError(f"config.json: {name} must be positive, got {value}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"config.json: {name} must be between {low} and {high}, got {value}")
        return float(value)

    def optional_number(self, names: str | Sequence[str], *, positive: bool = True) -> float | None:
        name, value = self._get(names, None)
        return None if value is None else self.number(name, positive=positive)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.hf.get(name, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"config.json: {name} must be true or false, got {show(value)}")
        return value

    def choice(self, name: str, allowed: Sequence[str], default: Any = _MISSING) -> str:
        """A string field that must be one of `allowed` (an unsupported value is named)."""
        name, value = self._get(name, default)
        if value not in allowed:
            from .errors import UnsupportedModelError

            raise UnsupportedModelError(
                f"{self.family} model with {name}={show(value)} is not supported (supported: {', '.join(allowed)})"
            )
        return value

    def token_id(self, name: str) -> int | None:
        value = self.hf.get(name)
        if value is None:
            return None
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"config.json: {name} must be a non-negative integer, got {show(value)}")
        return value

    def heads(
        self, hidden: int, heads_name: str = "num_attention_heads", kv_name: str = "num_key_value_heads", *, rotary: bool = True
    ) -> tuple[int, int, int]:
        """(heads, kv heads, head_dim), with kv heads dividing heads and head_dim defaulting to
        hidden / heads (even, when the heads rotate)."""
        heads = self.size(heads_name, "heads")
        kv_heads = self.size(kv_name, "heads", default=heads)
        if heads % kv_heads:
            raise ConfigError(f"config.json: {heads_name} ({heads}) is not a multiple of {kv_name} ({kv_heads})")
        if self.hf.get("head_dim") is None and hidden % heads:
            raise ConfigError(f"config.json: hidden size {hidden} is not a multiple of {heads_name} ({heads})")
        head_dim = self.size("head_dim", "head_dim", default=hidden // heads)
        if rotary and head_dim % 2:
            raise ConfigError(f"config.json: head_dim must be even for rotary positions, got {head_dim}")
        return heads, kv_heads, head_dim

    def layer_kinds(self, count: int, default: Sequence[str] | None = None) -> tuple[AttentionKind, ...] | None:
        """Each layer's attention kind from HF's `layer_types` list (`full_attention` /
        `sliding_attention`), else from `default` (in HF's names), else None."""
        value = self.hf.get("layer_types")
        if value is None:
            if default is None:
                return None
            value = list(default)
        if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
            raise ConfigError(f"config.json: layer_types must be a list of strings, got {value!r}")
        if len(value) != count:
            raise ConfigError(f"config.json: layer_types lists {len(value)} layers but there are {count}")
        for kind in value:
            if kind not in LAYER_KINDS:
                from .errors import UnsupportedModelError

                raise UnsupportedModelError(
                    f"{self.family} model with layer_types entry {kind!r} is not supported "
                    f"(supported: {', '.join(LAYER_KINDS)})"
                )
        return tuple(LAYER_KINDS[kind] for kind in value)

    def special_tokens(self) -> dict[str, Any]:
        return {"eos_token_ids": eos_ids(self.hf.get("eos_token_id")), "bos_token_id": self.token_id("bos_token_id")}


LAYER_KINDS: dict[str, AttentionKind] = {"full_attention": "full", "sliding_attention": "sliding"}
"""HF's `layer_types` names -> `DecoderConfig.layer_types` kinds."""

ACTIVATIONS = {
    "silu": "silu",
    "swish": "silu",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu": "gelu",
}


def activation(fields: HFFields, name: str = "hidden_act", default: str = "silu") -> str:
    """The feed-forward activation a HF config names, as a `DecoderConfig.activation`."""
    return ACTIVATIONS[fields.choice(name, list(ACTIVATIONS), default)]


def with_defaults(hf: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`hf` with the fields it leaves out taken from `defaults` (a transformers config class's
    defaults, so that a sparse config.json means what it means to transformers); a field
    config.json sets to null stays null."""
    if not isinstance(hf, Mapping):
        raise ConfigError(f"config.json must be a JSON object, got {type(hf).__name__}")
    return {**defaults, **hf}


def sliding_window_fields(
    fields: HFFields, n_layers: int, *, gated: bool = False, full_layers: str | None = None
) -> dict[str, Any]:
    """`sliding_window` and `layer_types` for `DecoderConfig`, as transformers derives them.

    `gated`: the window exists only while `use_sliding_window` is true (the Qwen configs set
    `sliding_window` to null otherwise). `full_layers` names the field counting the leading
    layers that attend fully (Qwen 2/3's `max_window_layers`): layers from there on slide,
    unless config.json lists `layer_types` itself, which then wins. Without `full_layers`
    every layer slides when there is a window (Mistral, Qwen 3 MoE).
    """
    window = None
    if not gated or fields.flag("use_sliding_window"):
        window = fields.optional_size("sliding_window", "context")
    if full_layers is None:
        return {"sliding_window": window, "layer_types": ()}
    kinds = fields.layer_kinds(n_layers)
    if window is None:
        if kinds is not None and "sliding" in kinds:
            raise ConfigError(
                "config.json: layer_types has sliding_attention layers but there is no window "
                "(sliding_window is null or use_sliding_window is false)"
            )
        return {"sliding_window": None, "layer_types": ()}
    if kinds is None:
        first = fields.integer(full_layers, low=0)
        kinds = tuple("sliding" if index >= first else "full" for index in range(n_layers))
    return {"sliding_window": window, "layer_types": kinds}


def decoder_fields(
    hf: Mapping[str, Any],
    family: str,
    *,
    tie_default: bool = False,
    eps_name: str = "rms_norm_eps",
    eps_default: float = 1e-6,
    context_default: int = 2048,
    act_name: str = "hidden_act",
    act_default: str = "silu",
) -> dict[str, Any]:
    """The `DecoderConfig` fields most HF decoder configs spell the same way (Llama's names),
    each read through `HFFields`; a family's `from_hf` adds or overrides its own knobs.
    `act_name` is the field naming the feed-forward activation (Gemma: `hidden_activation`)."""
    from .blocks.rope import rope_settings

    fields = HFFields(hf, family)
    hidden = fields.size("hidden_size", "hidden")
    heads, kv_heads, head_dim = fields.heads(hidden)
    theta, scaling = rope_settings(hf)
    return dict(
        vocab_size=fields.size("vocab_size", "vocab"),
        hidden_size=hidden,
        n_layers=fields.size("num_hidden_layers", "layers"),
        n_heads=heads,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=fields.size("intermediate_size", "inner"),
        context_length=fields.size("max_position_embeddings", "context", default=context_default),
        norm_eps=fields.number(eps_name, eps_default, positive=True),
        tie_word_embeddings=fields.flag("tie_word_embeddings", tie_default),
        rope_theta=theta,
        rope_scaling=scaling,
        activation=activation(fields, act_name, act_default),
        **fields.special_tokens(),
    )
