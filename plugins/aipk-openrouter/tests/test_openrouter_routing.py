"""Model lists with strategies, the round-robin counter, and the ``models`` request field."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aipk import ModelInfo
from aipk.errors import ConfigurationError, InvalidRequestError
from aipk_openrouter import ModelRouter, RoundRobin, is_free, models_field, order_models


def _m(model_id: str, prices: tuple[float, float] | None = None) -> ModelInfo:
    return ModelInfo(id=model_id, provider="openrouter",
                     input_price=prices[0] if prices else None,
                     output_price=prices[1] if prices else None)


A = _m("openai/gpt-4o", (2.5, 10.0))
B = _m("qwen/qwen3-coder:free", (0.0, 0.0))
C = _m("meta-llama/llama-3.3-70b-instruct", (0.13, 0.4))
D = _m("mystery/unpriced")
E = _m("google/gemma-3-27b-it:free")  # free by id, prices unknown
MODELS = (A, B, C, D, E)


def _ids(models: list[ModelInfo]) -> list[str]:
    return [m.id for m in models]


def test_failover_keeps_the_given_order() -> None:
    assert order_models(MODELS, "failover") == list(MODELS)


def test_cheapest_first_unknown_prices_last_ties_stable() -> None:
    assert _ids(order_models(MODELS, "cheapest_first")) == [
        "qwen/qwen3-coder:free", "meta-llama/llama-3.3-70b-instruct", "openai/gpt-4o",
        "mystery/unpriced", "google/gemma-3-27b-it:free"]


def test_round_robin_rotates_per_call() -> None:
    state = RoundRobin()
    orders = [_ids(order_models((A, B, C), "round_robin", state=state)) for _ in range(4)]
    assert orders == [[A.id, B.id, C.id], [B.id, C.id, A.id], [C.id, A.id, B.id],
                      [A.id, B.id, C.id]]


def test_round_robin_needs_state() -> None:
    with pytest.raises(ValueError, match="RoundRobin"):
        order_models(MODELS, "round_robin")


def test_free_only_filters_before_ordering() -> None:
    assert is_free(B) and is_free(E) and not is_free(C) and not is_free(D)
    assert _ids(order_models(MODELS, "failover", free_only=True)) == [B.id, E.id]
    assert _ids(order_models(MODELS, "cheapest_first", free_only=True)) == [B.id, E.id]
    assert order_models((A, C), "round_robin", free_only=True, state=RoundRobin()) == []


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown model strategy"):
        order_models(MODELS, "random")  # type: ignore[arg-type]


def test_round_robin_counter_is_thread_safe() -> None:
    counter = RoundRobin()
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        picks = [counter.take(4) for _ in range(1000)]
        with lock:
            seen.extend(picks)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(seen) == {0: 2000, 1: 2000, 2: 2000, 3: 2000}
    with pytest.raises(ValueError):
        counter.take(0)


def test_models_field() -> None:
    assert models_field([C, "x/y"]) == {"model": C.id, "models": [C.id, "x/y"]}
    with pytest.raises(InvalidRequestError) as info:
        models_field([])
    assert info.value.field == "models"


def test_model_router() -> None:
    router = ModelRouter(models=["a/1", "b/2:free", "c/3"], strategy="round_robin")
    assert all(m.provider == "openrouter" for m in router.models)
    assert router.body_fields() == {"model": "a/1", "models": ["a/1", "b/2:free", "c/3"]}
    assert router.body_fields() == {"model": "b/2:free", "models": ["b/2:free", "c/3", "a/1"]}
    free = ModelRouter(models=["a/1", "b/2:free"], free_only=True)
    assert free.body_fields() == {"model": "b/2:free", "models": ["b/2:free"]}
    with pytest.raises(InvalidRequestError, match="free_only"):
        ModelRouter(models=["a/1"], free_only=True).body_fields()


def test_model_router_validates() -> None:
    with pytest.raises(ConfigurationError, match="strategy"):
        ModelRouter(models=["a/1"], strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least one"):
        ModelRouter(models=[])


@given(prices=st.lists(st.one_of(st.none(), st.tuples(
    st.floats(0, 1000, allow_nan=False), st.floats(0, 1000, allow_nan=False))), max_size=12),
    strategy=st.sampled_from(["failover", "round_robin", "cheapest_first"]),
    free_only=st.booleans(), turns=st.integers(0, 5))
def test_ordering_is_a_permutation_of_the_candidates(
        prices: list[tuple[float, float] | None], strategy: str, free_only: bool,
        turns: int) -> None:
    models = [_m(f"m/{i}", p) for i, p in enumerate(prices)]
    state = RoundRobin()
    for _ in range(turns):
        state.take(max(1, len(models)))
    ordered = order_models(models, strategy, free_only, state)  # type: ignore[arg-type]
    expected = [m for m in models if is_free(m)] if free_only else models
    assert sorted(_ids(ordered)) == sorted(_ids(expected))
    if strategy == "cheapest_first":
        known = [m.input_price + m.output_price for m in ordered  # type: ignore[operator]
                 if m.input_price is not None]
        assert known == sorted(known)
