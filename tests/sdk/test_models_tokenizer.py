"""The shipped CLIP tokenizer is what tools/derive_clip_tokenizer.py makes from OpenAI's BPE table."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

from brushwork.models.derive import TOKENIZER

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("derive_clip_tokenizer", REPO / "tools" / "derive_clip_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_files_match_a_fresh_derivation(tmp_path):
    # Rebuild the BPE table (header line + merges) from the shipped merges, derive again, compare.
    merges = (TOKENIZER / "merges.txt").read_text("utf-8").splitlines()[1:]
    table = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    table.write_bytes(gzip.compress(("\"bpe_simple_vocab_16e6.txt#version: 0.2\n" + "\n".join(merges)).encode()))
    script = _script()
    assert script.main([str(table), str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "vocab.json").read_text("utf-8")) == json.loads(
        (TOKENIZER / "vocab.json").read_text("utf-8"))
    assert (tmp_path / "out" / "merges.txt").read_text("utf-8") == (TOKENIZER / "merges.txt").read_text("utf-8")


def test_vocabulary_shape_and_special_tokens():
    vocab = json.loads((TOKENIZER / "vocab.json").read_text("utf-8"))
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["a</w>"] == 320  # byte tokens first, then the "</w>" forms
    for name in ("vocab.json", "merges.txt"):
        assert (TOKENIZER / name).stat().st_size < 2_000_000


def test_tokenizes_like_the_real_clip_tokenizer():
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(TOKENIZER))
    # ids from CLIP's reference tokenizer (open_clip's SimpleTokenizer over the same BPE table,
    # compared on these and other prompts when the files were derived)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("An astronaut riding a horse").input_ids == [49406, 550, 18376, 6765, 320, 4558, 49407]
    assert tok("masterpiece, best quality, (detailed:1.2)", add_special_tokens=False).input_ids[:8] == [
        12066, 267, 949, 3027, 267, 263, 12609, 281]
    padded = tok("cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[-1] == 49407
