"""The one symbol-level tokenizer shared by every task family.

Each character is one token. The vocabulary is fixed (not learned from data) so
that a checkpoint trained on one mixture can be evaluated on any family or split:
symbols that a mixture never uses simply keep untrained embeddings, which is
exactly what the representation axis probes.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence

PAD, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")

# Order matters: token ids are part of every checkpoint. Append, never reorder.
SYMBOLS = string.ascii_uppercase + string.ascii_lowercase + string.digits + " \n:|,+#>-=;.?()[]"


class Tokenizer:
    """Maps characters to ids and back; ``<bos>``/``<eos>`` frame each document."""

    def __init__(self) -> None:
        self.itos = list(SPECIAL_TOKENS) + list(SYMBOLS)
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        assert len(self.stoi) == len(self.itos), "duplicate symbol in vocabulary"

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        try:
            ids = [self.stoi[ch] for ch in text]
        except KeyError as exc:  # a task emitted a symbol outside the vocabulary
            raise ValueError(f"symbol {exc.args[0]!r} is not in the tokenizer vocabulary") from None
        if bos:
            ids.insert(0, BOS)
        if eos:
            ids.append(EOS)
        return ids

    def decode(self, ids: Iterable[int], stop_at_eos: bool = True) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == EOS and stop_at_eos:
                break
            if i in (PAD, BOS, EOS):
                continue
            out.append(self.itos[i])
        return "".join(out)

    def decode_batch(self, rows: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(r) for r in rows]


TOKENIZER = Tokenizer()
