import threading

import numpy as np
import pytest
import torch

from picsearch.models.nn import SeededDropout, seeded_linear


def test_linear_init_comes_from_its_generator_only() -> None:
    first = seeded_linear(50, 8, torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # the global state must not matter
    second = seeded_linear(50, 8, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first.weight, second.weight)
    torch.testing.assert_close(first.bias, second.bias)
    assert float(first.weight.detach().abs().max()) <= 1 / np.sqrt(50)
    other = seeded_linear(50, 8, torch.Generator().manual_seed(4))
    assert not torch.equal(first.weight, other.weight)


def test_dropout_drops_at_its_rate_scales_the_rest_and_is_off_in_eval() -> None:
    layer = SeededDropout(0.2, seed=0)
    out = layer(torch.ones(400, 500))
    dropped = float((out == 0).float().mean())
    assert dropped == pytest.approx(0.2, abs=0.005)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.01)
    values = torch.unique(out).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(65536 / (65536 - 13107))
    layer.eval()
    x = torch.randn(3, 4)
    assert layer(x) is x


def test_dropout_masks_repeat_by_seed_even_beside_other_threads() -> None:
    def masks(seed: int, out: list) -> None:
        layer = SeededDropout(0.5, seed)
        out.extend(layer(torch.ones(64, 64)) for _ in range(20))

    alone: list = []
    masks(7, alone)
    results: list[list] = [[], []]
    threads = [threading.Thread(target=masks, args=(seed, out)) for seed, out in zip((7, 8), results)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(torch.equal(a, b) for a, b in zip(alone, results[0]))
    assert not torch.equal(alone[0], results[1][0])


def test_dropout_rejects_a_probability_of_one() -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        SeededDropout(1.0, seed=0)
