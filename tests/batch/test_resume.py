"""Running in-process: resume that verifies, atomic outputs, bad rows failing alone, the memory
refusal, the report and the CLI's exit codes."""

from __future__ import annotations

import io
import json

import brushwork
import pytest
from batch_helpers import TINY, outputs, write_jsonl
from brushwork.batch.identity import recipe_hash
from brushwork.batch.report import REPORT_NAME, read_report
from brushwork.metadata import read_metadata

GOOD = [{**TINY, "prompt": "a red brick wall", "seeds": [1, 2]}, {**TINY, "prompt": "moss", "seed": 3}]


def run(manifest, out, **kw):
    return brushwork.batch(manifest, out, runner="in-process", device="cpu", stream=io.StringIO(), **kw)


def test_a_rerun_skips_every_row_it_can_verify_and_remakes_the_rest(models_env, tmp_path):
    m = write_jsonl(tmp_path / "m.jsonl", GOOD)
    out = tmp_path / "out"
    first = run(m, out)
    assert first.counts == {"done": 3, "failed": 0, "skipped": 0}
    made = outputs(out)
    assert len(made) == 3
    for row in first.rows:  # named by the hash of the very recipe the PNG carries
        assert row.output.name.startswith(recipe_hash(read_metadata(row.output).recipe)[:16])

    again = run(m, out)
    assert again.counts == {"done": 0, "failed": 0, "skipped": 3}
    assert {r["status"] for r in read_report(out / REPORT_NAME)} == {"skipped"}

    # A truncated file and a file of another recipe under a row's name are made again;
    # a hidden temp file left by a kill is removed.
    a, b, _ = sorted(out.glob("*.png"))
    a.write_bytes(a.read_bytes()[:200])
    b.write_bytes(next(p for p in out.glob("*.png") if p != b).read_bytes())
    (out / ".x.png.abc.part").write_bytes(b"half")
    third = run(m, out)
    assert third.counts == {"done": 2, "failed": 0, "skipped": 1}
    assert outputs(out).keys() == made.keys()
    for name, arr in outputs(out).items():
        assert (arr == made[name]).all()
    assert not list(out.glob(".*"))


def test_bad_rows_fail_alone_and_the_batch_goes_on(models_env, tmp_path, picture):
    (tmp_path / "junk.png").write_bytes(b"junk")
    m = write_jsonl(tmp_path / "m.jsonl", [
        GOOD[1],
        {**TINY, "model": "no-such-model", "seed": 1},
        {**TINY, "init_image": "junk.png", "strength": 0.5, "seed": 1},
        "not json",
        {**TINY, "prompt": "from a picture", "init_image": "init.png", "strength": 0.6, "seed": 2},
        {**TINY, "embeddings": [{"name": "no-such-embedding"}], "seed": 4},  # fails only when it runs
    ])
    out = tmp_path / "out"
    result = run(m, out)
    status = {r.index: (r.status, r.reason) for r in result.rows}
    assert status[1][0] == status[5][0] == "done"
    assert status[2][0] == "failed" and "no-such-model" in status[2][1]
    assert status[3][0] == "failed" and "junk.png" in status[3][1]
    assert status[4][0] == "failed" and "JSON" in status[4][1]
    assert status[6][0] == "failed" and "no-such-embedding" in status[6][1]
    assert len(outputs(out)) == 2
    report = read_report(out / REPORT_NAME)
    assert sorted(r["row"] for r in report) == [1, 2, 3, 4, 5, 6]  # every row, once
    assert all(r["reason"] and "\n" not in r["reason"] for r in report if r["status"] == "failed")
    assert {r["row"]: r["seed"] for r in report if r["status"] == "done"} == {1: 3, 5: 2}


def test_rows_that_cannot_fit_the_memory_limit_are_refused_with_the_figure(models_env, tmp_path):
    m = write_jsonl(tmp_path / "m.jsonl", [{**TINY, "seed": 1}, {**TINY, "seed": 2, "width": 2048, "height": 2048}])
    stream = io.StringIO()
    result = brushwork.batch(m, tmp_path / "out", runner="in-process", device="cpu", stream=stream,
                             memory_limit=1 << 20)
    first, big = result.rows
    assert first.status == "done" and first.peak_bytes > 0
    assert big.status == "failed" and "needs about" in big.reason and "2048x2048" in big.reason
    assert "1 MiB" in big.reason
    text = stream.getvalue()
    assert "estimate: first row (64x64)" in text and "peak memory" in text


def test_the_cli_prints_outputs_and_exits_1_when_a_row_failed(models_env, tmp_path, capsys):
    from brushwork.cli import main

    m = write_jsonl(tmp_path / "m.jsonl", [GOOD[1], {**TINY, "steps": 0}])
    assert main(["batch", str(m), "--out", str(tmp_path / "out"), "--in-process"]) == 1
    captured = capsys.readouterr()
    [printed] = captured.out.split()
    assert printed.endswith(".png") and (tmp_path / "out" / printed.split("/")[-1]).is_file()
    assert captured.err.strip().splitlines()[-1].startswith("brushwork: error: 1 of 2 rows failed")
    assert "steps: must be between 1 and 200" in captured.err
    assert main(["batch", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["batch", str(m), "--out", str(tmp_path / "o"), "--memory-limit", "lots"]) == 2


@pytest.mark.parametrize("rows", [[], ["# only a comment"]])
def test_an_empty_manifest_is_an_empty_batch(tmp_path, rows):
    m = write_jsonl(tmp_path / "m.jsonl", rows)
    result = run(m, tmp_path / "out")
    assert result.rows == [] and result.ok
    assert (tmp_path / "out" / REPORT_NAME).read_text() == ""


def test_a_python_list_of_rows_is_a_manifest(models_env, tmp_path):
    result = run([{**TINY, "prompt": "moss", "seeds": [1, 2]}, "nope"], tmp_path / "out")
    assert [r.status for r in result.rows] == ["done", "done", "failed"]
    assert json.loads(json.dumps(result.counts)) == {"done": 2, "failed": 1, "skipped": 0}
