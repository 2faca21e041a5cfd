from hypothesis import given
from hypothesis import strategies as st

from ood_bench.model.tokenizer import BOS, EOS, PAD, SYMBOLS, TOKENIZER


@given(st.text(alphabet=SYMBOLS, max_size=200))
def test_round_trip(text):
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text
    ids = TOKENIZER.encode(text, bos=True, eos=True)
    assert ids[0] == BOS and ids[-1] == EOS
    assert TOKENIZER.decode(ids) == text


def test_decode_stops_at_eos_and_skips_padding():
    ids = [BOS] + TOKENIZER.encode("AB") + [EOS] + TOKENIZER.encode("CD") + [PAD]
    assert TOKENIZER.decode(ids) == "AB"
    assert TOKENIZER.decode(ids, stop_at_eos=False) == "ABCD"


def test_unknown_symbol_is_named():
    import pytest

    with pytest.raises(ValueError, match="'€'"):
        TOKENIZER.encode("A€")


def test_vocabulary_is_stable():
    # token ids are baked into every checkpoint: the first ids must never move
    assert TOKENIZER.itos[:6] == ["<pad>", "<bos>", "<eos>", "A", "B", "C"]
    assert TOKENIZER.vocab_size == len(set(TOKENIZER.itos))
