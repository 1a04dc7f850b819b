import pytest
import torch
from conftest import tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.model import AcousticModel, ModelConfig

torch.manual_seed(0)
FEATS = torch.randn(2, 157, 80)


def model(**overrides) -> AcousticModel:
    torch.manual_seed(1)
    return AcousticModel(tiny_config(**overrides)).eval()


UNI = model()
with torch.no_grad():
    WHOLE, WHOLE_LENGTHS, _ = UNI(FEATS, torch.tensor([157, 157]))


def run_chunked(m: AcousticModel, sizes: list[int]) -> torch.Tensor:
    outputs, state, start = [], None, 0
    bounds = [*sizes, FEATS.shape[1]]
    with torch.no_grad():
        for size in bounds:
            chunk = FEATS[:, start : start + size]
            out, _, state = m(chunk, torch.full((2,), chunk.shape[1]), state)
            outputs.append(out)
            start += chunk.shape[1]
    return torch.cat(outputs, dim=1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=23), max_size=25))
def test_chunked_equals_whole(sizes: list[int]) -> None:
    out = run_chunked(UNI, sizes)
    assert out.shape == WHOLE.shape
    assert float((out - WHOLE).abs().max()) <= 1e-4


def test_one_frame_at_a_time_keeps_conv_context() -> None:
    out = run_chunked(UNI, [1] * 156)
    assert float((out - WHOLE).abs().max()) <= 1e-4
    # Without the carried state the chunk edges differ: the test above can fail.
    with torch.no_grad():
        pieces = [UNI(FEATS[:, i : i + 8], torch.full((2,), 8))[0] for i in range(0, 152, 8)]
    assert float((torch.cat(pieces, 1) - WHOLE[:, :38]).abs().max()) > 1e-3


def test_shapes_and_lengths() -> None:
    assert WHOLE.shape == (2, 40, 29)
    assert WHOLE_LENGTHS.tolist() == [40, 40]
    assert torch.allclose(WHOLE.exp().sum(-1), torch.ones(2, 40), atol=1e-5)
    assert ModelConfig().subsampling == 4


def test_padding_does_not_change_valid_outputs() -> None:
    with torch.no_grad():
        short, lengths, _ = UNI(FEATS[:1, :90], torch.tensor([90]))
        padded = torch.cat([FEATS[:1, :90], torch.randn(1, 67, 80) * 5], dim=1)
        batch = torch.cat([padded, FEATS[1:]])
        out, batch_lengths, _ = UNI(batch, torch.tensor([90, 157]))
    assert batch_lengths.tolist() == [int(lengths), 40]
    assert float((out[0, : int(lengths)] - short[0]).abs().max()) <= 1e-5


def test_bidirectional_sees_the_future_and_refuses_state() -> None:
    bi = model(bidirectional=True)
    with torch.no_grad():
        out, lengths, _ = bi(FEATS, torch.tensor([157, 100]))
        alone, _, _ = bi(FEATS[1:, :100], torch.tensor([100]))
        changed, _, _ = bi(torch.cat([FEATS[:, :100], -FEATS[:, 100:]], 1), torch.tensor([157, 100]))
    assert out.shape == (2, 40, 29) and lengths.tolist() == [40, 25]
    assert float((out[1, :25] - alone[0]).abs().max()) <= 1e-5  # packing ignores padding
    assert float((changed[0, :20] - out[0, :20]).abs().max()) > 1e-4  # the backward pass
    with pytest.raises(ValueError, match="cannot stream"):
        bi(FEATS, torch.tensor([157, 157]), bi.initial_state(2))


def test_normalisation_is_applied() -> None:
    m = model()
    with torch.no_grad():
        before, _, _ = m(FEATS, torch.tensor([157, 157]))
        m.set_normalization(torch.full((80,), 2.0), torch.full((80,), 3.0))
        after, _, _ = m(FEATS * 3 + 2, torch.tensor([157, 157]))
    assert float((before - after).abs().max()) <= 1e-4


LC = model(bidirectional=True, chunk_frames=4, lookahead_frames=2)
with torch.no_grad():
    LC_WHOLE, _, _ = LC(FEATS, torch.tensor([157, 157]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), max_size=20))
def test_latency_controlled_bidirectional_streams_exactly(sizes: list[int]) -> None:
    outputs, state, start = [], None, 0
    with torch.no_grad():
        for size in sizes:
            chunk = FEATS[:, start : start + size]
            if chunk.shape[1] == 0:
                continue
            out, _, state = LC(chunk, torch.full((2,), chunk.shape[1]), state, final=False)
            outputs.append(out)
            start += chunk.shape[1]
        rest = FEATS[:, start:]
        out, _, state = LC(rest, torch.full((2,), rest.shape[1]), state or LC.initial_state(2), final=True)
        outputs.append(out)
    assert float((torch.cat(outputs, 1) - LC_WHOLE).abs().max()) <= 1e-4
    assert state.pending.shape[1] == 0


def test_lookahead_is_bounded() -> None:
    # Changing input from output frame 25 on changes outputs only from the chunk whose
    # lookahead reaches it (chunk 4 + lookahead 2: frame 20), never earlier ones.
    changed = FEATS.clone()
    changed[:, 100:] = torch.randn(2, 57, 80)
    with torch.no_grad():
        out, _, _ = LC(changed, torch.tensor([157, 157]))
    differs = (out - LC_WHOLE).abs().amax(dim=(0, 2)) > 1e-6
    assert int(differs.float().argmax()) == 20 and not bool(differs[:20].any())
    assert LC.config.latency_frames == 6
    # A whole-utterance bidirectional model reaches back to the first frame.
    bi = model(bidirectional=True)
    with torch.no_grad():
        a, _, _ = bi(FEATS, torch.tensor([157, 157]))
        b, _, _ = bi(changed, torch.tensor([157, 157]))
    assert float((a - b)[:, 0].abs().max()) > 1e-6


def test_latency_controlled_padding_matches_single() -> None:
    with torch.no_grad():
        alone, _, _ = LC(FEATS[1:, :90], torch.tensor([90]))
        batch, lengths, _ = LC(FEATS, torch.tensor([157, 90]))
    assert lengths.tolist() == [40, 23]
    assert float((batch[1, :23] - alone[0]).abs().max()) <= 1e-5


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="bidirectional"):
        ModelConfig(chunk_frames=4)
    with pytest.raises(ValueError, match="chunk_frames > 0"):
        ModelConfig(bidirectional=True, lookahead_frames=2)
    assert not ModelConfig(bidirectional=True).streaming and ModelConfig().streaming
