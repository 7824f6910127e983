"""A bounded load test for an OpenAI-compatible server on this machine (`zoo loadtest`).

Clients send completions concurrently over loopback and the report gives
requests/s, aggregate and per-request tokens/s, time-to-first-token
percentiles and errors. Options add hostile traffic: clients that disconnect
mid-stream and requests with invalid parameters (expected to get a 4xx). With
`verify`, every distinct prompt is first sent alone, and each valid answer
under load must carry exactly that text (temperature 0).

Only loopback addresses are accepted, the number of requests and the
concurrency are capped, and the whole run has a deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import random
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from zoo.core.errors import OptionsError

MAX_REQUESTS = 5000
MAX_CONCURRENCY = 256
DEFAULT_PROMPTS = (
    "The meaning of life is",
    "Once upon a time, in a small village,",
    "Here is a list of things to do today:",
    "The weather forecast for tomorrow says",
    "In the beginning of the twentieth century",
    "My favourite recipe starts with",
    "The best way to learn a language is",
    "Scientists announced today that",
)


@dataclass
class Outcome:
    """One request's result. `kind` is valid, invalid or disconnect."""

    kind: str
    prompt: str | list[int]
    status: int = 0
    text: str = ""
    tokens: int = 0
    ttft: float | None = None  # seconds from send to the first text
    seconds: float = 0.0  # send to last byte
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass
class LoadReport:
    """What `run_load` measured; `problems` lists every check that failed."""

    concurrency: int
    requests: int
    wall_seconds: float
    succeeded: int
    statuses: dict[str, int]
    requests_per_second: float
    aggregate_tokens_per_second: float
    per_request_tokens_per_second: dict[str, float]
    ttft_seconds: dict[str, float]
    completion_tokens: int
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """A short human-readable report."""
        tps, ttft = self.per_request_tokens_per_second, self.ttft_seconds
        out = [
            f"concurrency {self.concurrency}: {self.requests} requests in {self.wall_seconds:.1f}s "
            f"({self.requests_per_second:.2f} req/s), {self.succeeded} succeeded, statuses {self.statuses}",
            f"  tokens/s: aggregate {self.aggregate_tokens_per_second:.1f}; per request "
            f"median {tps.get('median', 0):.1f}, min {tps.get('min', 0):.1f}, max {tps.get('max', 0):.1f}",
            f"  time to first token: p50 {ttft.get('p50', 0) * 1000:.0f} ms, p90 {ttft.get('p90', 0) * 1000:.0f} ms, "
            f"p99 {ttft.get('p99', 0) * 1000:.0f} ms, max {ttft.get('max', 0) * 1000:.0f} ms",
        ]
        out += [f"  problem: {p}" for p in self.problems]
        return out


def check_loopback(url: str) -> str:
    """The base URL (no trailing slash) if its host is a loopback address; else OptionsError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionsError(f"{url!r} is not an http URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise OptionsError(f"cannot resolve {parts.hostname}: {error}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise OptionsError(f"the load test only targets this machine (loopback); {parts.hostname} is not loopback")
    return url.rstrip("/")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def invalid_bodies(model: str, vocab_size: int | None) -> list[tuple[str, dict[str, Any]]]:
    """Requests a server must refuse with a 4xx, labelled."""
    bad_id = (vocab_size or 1_000_000) + 7
    return [
        ("token id beyond the vocabulary", {"model": model, "prompt": [1, 2, bad_id], "max_tokens": 4}),
        ("negative token id", {"model": model, "prompt": [5, -3], "max_tokens": 4}),
        ("negative max_tokens", {"model": model, "prompt": "Hello", "max_tokens": -5}),
        ("unknown model", {"model": model + "-not-served", "prompt": "Hello", "max_tokens": 4}),
    ]


async def _one(client: Any, url: str, body: dict[str, Any], kind: str, disconnect_after: int, deadline: float) -> Outcome:
    """Sends one streaming completion and reads it (or drops it after `disconnect_after` events)."""
    outcome = Outcome(kind, body["prompt"])
    started = time.perf_counter()
    try:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
                outcome.status = response.status_code
                if response.status_code != 200:
                    payload = (await response.aread()).decode(errors="replace")
                    outcome.error = _error_message(payload)
                    return outcome
                events = 0
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[len("data: ") :]
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        outcome.error = str(chunk["error"])
                        break
                    if chunk.get("usage"):
                        outcome.tokens = int(chunk["usage"].get("completion_tokens") or 0)
                    for choice in chunk.get("choices") or []:
                        piece = choice.get("text") or ""
                        if piece and outcome.ttft is None:
                            outcome.ttft = time.perf_counter() - started
                        outcome.text += piece
                    events += 1
                    if disconnect_after and events >= disconnect_after:
                        break  # leaving the block closes the connection mid-stream
    except TimeoutError:
        outcome.error = "deadline reached"
    except Exception as error:  # connection refused, reset, bad JSON: all count as errors
        outcome.error = f"{type(error).__name__}: {error}"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _error_message(payload: str) -> str:
    try:
        return str(json.loads(payload)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return payload[:200]


async def run_load_async(
    url: str,
    model: str,
    *,
    concurrency: int,
    requests: int,
    max_tokens: int = 64,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    temperature: float = 0.0,
    ignore_eos: bool = True,
    disconnect_fraction: float = 0.0,
    invalid_fraction: float = 0.0,
    vocab_size: int | None = None,
    expected: dict[str, str] | None = None,
    time_limit: float = 600.0,
    seed: int = 0,
) -> tuple[LoadReport, list[Outcome]]:
    """Runs `requests` completions through `concurrency` concurrent clients."""
    import httpx

    url = check_loopback(url)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise OptionsError(f"concurrency must be 1-{MAX_CONCURRENCY}")
    if not 1 <= requests <= MAX_REQUESTS:
        raise OptionsError(f"requests must be 1-{MAX_REQUESTS}")
    if not prompts:
        raise OptionsError("no prompts")
    rng = random.Random(seed)
    kinds = ["valid"] * requests
    slots = list(range(requests))
    rng.shuffle(slots)
    n_invalid = round(requests * invalid_fraction)
    n_disconnect = round(requests * disconnect_fraction)
    for index in slots[:n_invalid]:
        kinds[index] = "invalid"
    for index in slots[n_invalid : n_invalid + n_disconnect]:
        kinds[index] = "disconnect"
    bad = invalid_bodies(model, vocab_size)
    plan: list[tuple[str, dict[str, Any]]] = []
    for index, kind in enumerate(kinds):
        if kind == "invalid":
            plan.append((kind, {**bad[index % len(bad)][1], "stream": True}))
            continue
        body = {
            "model": model, "prompt": prompts[index % len(prompts)], "max_tokens": max_tokens,
            "temperature": temperature, "stream": True, "stream_options": {"include_usage": True},
        }
        if ignore_eos:
            body["ignore_eos"] = True
        plan.append((kind, body))

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)
    outcomes: list[Outcome | None] = [None] * requests
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(time_limit), limits=limits) as client:

        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                index = queue.get_nowait()
                kind, body = plan[index]
                outcomes[index] = await _one(client, url, body, kind, 3 if kind == "disconnect" else 0, deadline)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    done = [o for o in outcomes if o is not None]
    report = summarize(done, concurrency, wall, expected, skipped=requests - len(done))
    return report, done


def summarize(
    outcomes: Sequence[Outcome], concurrency: int, wall: float, expected: dict[str, str] | None, skipped: int = 0
) -> LoadReport:
    """Turns outcomes into the report, checking each kind against what it should get."""
    valid = [o for o in outcomes if o.kind == "valid"]
    good = [o for o in valid if o.ok]
    statuses = Counter("error" if o.error and o.status == 200 else str(o.status or "no answer") for o in outcomes)
    per_request = [
        (o.tokens - 1) / (o.seconds - o.ttft) for o in good if o.ttft is not None and o.tokens > 1 and o.seconds > o.ttft
    ]
    ttfts = [o.ttft for o in good if o.ttft is not None]
    tokens = sum(o.tokens for o in good)
    problems = []
    if skipped:
        problems.append(f"{skipped} requests not sent before the deadline")
    for o in valid:
        if not o.ok:
            problems.append(f"valid request failed: status {o.status}, {o.error}")
        elif expected is not None and isinstance(o.prompt, str) and expected.get(o.prompt) != o.text:
            problems.append(f"wrong text for {o.prompt!r}: {o.text[:60]!r} != {expected.get(o.prompt, '')[:60]!r}")
    for o in outcomes:
        if o.kind == "invalid" and not 400 <= o.status < 500:
            problems.append(f"invalid request {o.prompt!r} got status {o.status} ({o.error})")
        if o.kind == "disconnect" and o.status not in (200, 429, 503):
            problems.append(f"disconnecting request got status {o.status} ({o.error})")
    return LoadReport(
        concurrency=concurrency,
        requests=len(outcomes),
        wall_seconds=wall,
        succeeded=len(good),
        statuses=dict(sorted(statuses.items())),
        requests_per_second=len(outcomes) / wall if wall else 0.0,
        aggregate_tokens_per_second=tokens / wall if wall else 0.0,
        per_request_tokens_per_second=(
            {"median": statistics.median(per_request), "min": min(per_request), "max": max(per_request)}
            if per_request else {}
        ),
        ttft_seconds={"p50": percentile(ttfts, 50), "p90": percentile(ttfts, 90), "p99": percentile(ttfts, 99),
                      "max": max(ttfts, default=0.0)},
        completion_tokens=tokens,
        problems=problems[:20],
    )


async def expected_texts_async(url: str, model: str, prompts: Sequence[str], max_tokens: int, ignore_eos: bool = True) -> dict[str, str]:
    """Each prompt's greedy text, asked alone (the reference for `verify`)."""
    import httpx

    texts = {}
    async with httpx.AsyncClient(timeout=600) as client:
        for prompt in dict.fromkeys(prompts):
            body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
            if ignore_eos:
                body["ignore_eos"] = True
            response = await client.post(f"{url}/v1/completions", json=body)
            if response.status_code != 200:
                raise OptionsError(f"reference request failed: {response.status_code} {_error_message(response.text)}")
            texts[prompt] = response.json()["choices"][0]["text"]
    return texts


def served_model(url: str) -> str:
    """The first model the server lists."""
    import httpx

    models = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
    if not models:
        raise OptionsError(f"{url} serves no model")
    return str(models[0]["id"])


def run_load(url: str, model: str | None = None, *, verify: bool = False, **options: Any) -> tuple[LoadReport, list[Outcome]]:
    """`run_load_async` from synchronous code; `verify` first asks each prompt alone."""
    url = check_loopback(url)
    model = model or served_model(url)
    if verify:
        if options.get("temperature", 0.0) != 0.0:
            raise OptionsError("verify compares greedy texts: use temperature 0")
        prompts = options.get("prompts", DEFAULT_PROMPTS)
        options["expected"] = asyncio.run(
            expected_texts_async(url, model, prompts, options.get("max_tokens", 64), options.get("ignore_eos", True))
        )
    return asyncio.run(run_load_async(url, model, **options))
