"""Jobs through a real worker process with the tiny models: pixels, progress, isolation, cancel,
live replacement, event replay, uploads, history, and the client in a torch-free interpreter."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from brushwork import protocol
from brushwork.errors import BrushworkError, CancelledError
from PIL import Image
from worker_helpers import raw_request, tiny_recipe

pytestmark = pytest.mark.xdist_group("worker-jobs")

SDK = Path(__file__).resolve().parents[2] / "sdk" / "brushwork"
LONG = dict(steps=200)  # ~seconds on the tiny model: long enough to act on while it runs


def wait_for(job, kind, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in job.poll(timeout=1.0):
            if event.kind == kind:
                return event
        if any(e.kind == kind for e in job.events):
            return next(e for e in job.events if e.kind == kind)
    raise AssertionError(f"no {kind} event for {job.id} within {timeout} s; got {[e.kind for e in job.events]}")


def pixels(image_or_png) -> np.ndarray:
    if isinstance(image_or_png, bytes):
        image_or_png = Image.open(io.BytesIO(image_or_png))
    return np.asarray(image_or_png.convert("RGB"))


@pytest.mark.slow
def test_same_pixels_through_the_worker_as_in_process(jobs_worker, tiny_models, monkeypatch):
    recipe = tiny_recipe()
    remote = jobs_worker.client().generate(recipe)
    monkeypatch.setenv("BRUSHWORK_MODEL_DIRS", str(tiny_models.root))
    import brushwork

    local = brushwork.Studio(device="cpu").generate(recipe)
    assert remote.seeds == local.seeds == [7]
    assert np.array_equal(pixels(remote.images[0]), pixels(local.images[0]))
    # Written by the worker, with the recipe inside, before the job said done.
    written = Path(remote.paths[0])
    assert written.is_file() and written.is_relative_to(jobs_worker.home / "data" / "outputs")
    assert written.read_bytes() == remote.png_bytes[0]
    from brushwork.metadata import read_metadata

    assert read_metadata(written).recipe.seed == 7
    assert remote.recipe.model == "tiny-sd15"


def test_progress_events_are_numbered_with_small_png_previews(jobs_worker):
    seen = []
    client = jobs_worker.client()
    result = client.generate(tiny_recipe(steps=3, seed=11), on_progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3] and all(p.total == 3 for p in seen)
    assert all(p.preview_png.startswith(b"\x89PNG") for p in seen)
    assert seen[0].preview.size[0] <= 64  # latent-sized: made without a VAE decode
    job = client.jobs()[-1]
    events = client.events(0, job=job.id)["events"]
    assert [e.kind for e in events] == ["queued", "started", "progress", "progress", "progress", "result"]
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[-1].data["results"][0]["sha256"] == result.hashes[0]


def test_a_client_that_shows_no_progress_waits_for_the_end_only(jobs_worker):
    client = jobs_worker.client()
    job = client.submit(tiny_recipe(steps=3, seed=12))
    result = job.result()  # no on_progress: asks the worker for final events only
    assert [e.kind for e in job.events] == ["result"]
    assert result.seeds == [12]
    only_ends = client.events(0, job=job.id, kinds=protocol.FINAL_EVENTS)["events"]
    assert [e.kind for e in only_ends] == ["result"]
    everything = client.events(0, job=job.id)["events"]
    assert [e.kind for e in everything].count("progress") == 3  # still there for anyone who asks
    status, _, reply = raw_request(jobs_worker, "GET", f"/v1/events?since=0&kinds=result,finished&job={job.id}")
    assert status == 400 and "finished" in reply["error"]["message"]


def test_batch_results_save_like_the_engine(jobs_worker, tmp_path):
    result = jobs_worker.client().generate(tiny_recipe(batch=2, seed=3, steps=2))
    assert result.seeds == [3, 4] and len(result.png_bytes) == 2
    saved = result.save(tmp_path / "pair.png")
    assert [p.name for p in saved] == ["pair-1.png", "pair-2.png"]
    assert not np.array_equal(pixels(result.png_bytes[0]), pixels(result.png_bytes[1]))


def test_several_clients_at_once_each_get_their_own_results(jobs_worker):
    results, errors = {}, []

    def artist(seed):
        try:
            results[seed] = jobs_worker.client(f"artist-{seed}").generate(tiny_recipe(steps=2, seed=seed), timeout=120)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=artist, args=(seed,)) for seed in (31, 32, 33)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert {seed: r.seeds for seed, r in results.items()} == {31: [31], 32: [32], 33: [33]}
    assert len({r.hashes[0] for r in results.values()}) == 3
    for seed in results:
        assert [h.results[0]["seed"] for h in jobs_worker.client(f"artist-{seed}").history()] == [seed]


def test_clients_see_and_cancel_only_their_own_jobs(jobs_worker):
    alice, bob = jobs_worker.client("alice-key"), jobs_worker.client("bob-key")
    long_job = alice.submit(tiny_recipe(**LONG))
    wait_for(long_job, "progress")
    bobs = bob.submit(tiny_recipe(seed=1))
    assert bobs.position >= 1  # behind alice's running job
    for method, path in (("GET", f"/v1/jobs/{long_job.id}"), ("POST", f"/v1/jobs/{long_job.id}/cancel")):
        status, _, body = raw_request(jobs_worker, method, path, headers={protocol.H_CLIENT: "bob-key"})
        assert status == 404, body
    with pytest.raises(BrushworkError) as info:
        bob.cancel(long_job.id)
    assert info.value.code == "not_found"
    assert [j.id for j in bob.jobs()] == [bobs.id]
    assert all(e.job == bobs.id for e in bob.events(0)["events"])
    assert long_job.status == protocol.RUNNING  # bob's attempts changed nothing
    long_job.cancel()
    with pytest.raises(CancelledError):
        long_job.result(timeout=60)
    done = bobs.result(timeout=60)
    status, _, _ = raw_request(jobs_worker, "GET", f"/v1/results/{done.hashes[0]}",
                               headers={protocol.H_CLIENT: "alice-key"})
    assert status == 404  # results are fetched by their owner only


def test_cancel_mid_job_stops_at_the_next_step_and_writes_nothing(jobs_worker):
    client = jobs_worker.client()
    outputs = jobs_worker.home / "data" / "outputs"
    before = set(outputs.rglob("*")) if outputs.exists() else set()
    job = client.submit(tiny_recipe(**LONG))
    wait_for(job, "progress")
    asked = time.monotonic()
    job.cancel()
    with pytest.raises(CancelledError):
        job.result(timeout=60)
    assert time.monotonic() - asked < 10
    steps = [e.data["step"] for e in job.events if e.kind == "progress"]
    assert max(steps) < 200
    assert job.status == protocol.CANCELLED
    after = set(outputs.rglob("*")) if outputs.exists() else set()
    assert not [p for p in after - before if job.id in p.name or p.name.endswith(".part")]
    # The worker carries on, model still loaded.
    assert client.generate(tiny_recipe(steps=2)).seeds == [7]


def test_generate_with_a_cancel_event_like_studio(jobs_worker):
    cancel = threading.Event()
    client = jobs_worker.client()

    def on_progress(p):
        if p.step == 2:
            cancel.set()

    with pytest.raises(CancelledError):
        client.generate(tiny_recipe(**LONG), on_progress=on_progress, cancel=cancel, timeout=60)


def test_a_live_job_replaces_the_clients_waiting_live_job(jobs_worker):
    blocker_client, artist = jobs_worker.client(), jobs_worker.client()
    blocker = blocker_client.submit(tiny_recipe(**LONG))
    wait_for(blocker, "started")
    regular = artist.submit(tiny_recipe(seed=1, steps=2))
    live = [artist.submit(tiny_recipe(seed=s, steps=2), live=True) for s in (2, 3, 4)]
    assert [j.status for j in live] == [protocol.CANCELLED, protocol.CANCELLED, protocol.QUEUED]
    assert live[0].info.error["reason"] == "replaced"
    assert live[0].info.error["replaced_by"] == live[1].id
    assert regular.status == protocol.QUEUED  # only live jobs are replaced
    blocker.cancel()
    assert live[2].result(timeout=60).seeds == [4]
    assert regular.result(timeout=60).seeds == [1]
    with pytest.raises(CancelledError, match="replaced"):
        live[0].result(timeout=5)


def test_events_replay_after_a_dropped_connection(jobs_worker):
    client = jobs_worker.client("replay-key")
    job = client.submit(tiny_recipe(steps=4, seed=5))
    first = wait_for(job, "started")
    client.close()  # the connection drops mid-job
    # A new client with the same key (a restarted canvas) picks up from the last seq it saw.
    again = jobs_worker.client("replay-key")
    deadline = time.monotonic() + 60
    events = []
    while time.monotonic() < deadline and not any(e.kind == "result" for e in events):
        events += again.events(events[-1].seq if events else first.seq, job=job.id, timeout=5)["events"]
    kinds = [e.kind for e in events]
    assert kinds == ["progress"] * 4 + ["result"], kinds
    everything = again.events(0, job=job.id)["events"]
    assert [e.kind for e in everything][:2] == ["queued", "started"] and everything[-1].seq == events[-1].seq
    # Final states are also kept by the history: a job outlives its events.
    assert again.job(job.id).state == protocol.DONE


def test_uploads_by_hash_feed_img2img_and_are_sent_once(jobs_worker, tmp_path):
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(init)
    client = jobs_worker.client()
    result = client.generate(tiny_recipe(init_image=str(init), strength=0.5, steps=2))
    ref = result.recipe.init_image
    assert ref.startswith("sha256:") and client.missing([ref]) == []
    # The same file again: asked first, nothing missing, nothing sent.
    prepared = client.prepare(tiny_recipe(init_image=str(init)))
    assert prepared.init_image == ref


def test_blender_style_depth_signal_and_lora_by_name(jobs_worker):
    """What the Blender add-on sends: raw float32 depth uploaded by hash, models by name."""
    client = jobs_worker.client()
    depth = np.linspace(1.0, 10.0, 64 * 64, dtype="<f4").reshape(64, 64)
    depth[:8] = np.inf  # nothing hit
    ref = client.upload(depth.tobytes())
    from brushwork import Control, Lora

    control = Control(kind="depth", model="controlnet-tiny-depth",
                      signal={"data": ref, "width": 64, "height": 64, "format": "f32le", "near": 1.0, "far": 10.0})
    plain = client.generate(tiny_recipe(steps=2))
    shaped = client.generate(tiny_recipe(steps=2, controls=[control], loras=[Lora("lora-tiny", 0.8)]))
    assert shaped.recipe.controls[0].signal["data"] == ref
    assert not np.array_equal(pixels(plain.png_bytes[0]), pixels(shaped.png_bytes[0]))


def test_an_oversized_input_image_is_refused_when_used(jobs_worker):
    buf = io.BytesIO()
    Image.new("L", (8192, 4097)).save(buf, format="PNG")  # a few KB of PNG, 33 M pixels
    client = jobs_worker.client()
    with pytest.raises(BrushworkError, match="too many pixels") as info:
        client.generate(tiny_recipe(init_image="sha256:" + client.upload(buf.getvalue()).split(":")[1]), timeout=60)
    assert info.value.code == "bad_image"


def test_engine_errors_keep_their_code_and_the_worker_stays_up(jobs_worker):
    client = jobs_worker.client()
    with pytest.raises(BrushworkError) as info:
        client.generate(tiny_recipe(model="no-such-model"), timeout=60)
    assert info.value.code == "model_not_found"
    assert client.health()["ok"]


def test_history_lists_the_clients_finished_jobs(jobs_worker):
    client = jobs_worker.client("history-key")
    result = client.generate(tiny_recipe(steps=2, seed=21))
    history = client.history()
    assert history[0].state == protocol.DONE and history[0].results[0]["sha256"] == result.hashes[0]
    assert all(h.id != "x" for h in jobs_worker.client("someone-else").history())
    assert not jobs_worker.client("someone-else").history() or \
        result.hashes[0] not in {r["sha256"] for h in jobs_worker.client("someone-else").history() for r in h.results}


def test_models_are_listed_by_name(jobs_worker):
    models = jobs_worker.client().models()
    names = {m["name"] for m in models}
    assert "tiny-sd15" in names
    assert not any("/" in str(m.get("name", "")) and str(m["name"]).startswith("/") for m in models)


STDLIB_MODULES = ["recipe.py", "errors.py", "assets.py", "paths.py", "protocol.py", "client.py", "launch.py"]

TORCH_FREE_SCRIPT = r"""
import sys, os
import brushwork
from brushwork.client import Client
from brushwork.recipe import Recipe
client = Client(os.environ["W_URL"], os.environ["W_TOKEN"])
assert client.health()["ok"]
steps = []
result = client.generate(Recipe(prompt="a wall", model="tiny-sd15", width=64, height=64, steps=2, seed=9),
                         on_progress=lambda p: steps.append((p.step, p.preview is None, p.preview_png[:4])))
assert steps == [(1, True, b"\x89PNG"), (2, True, b"\x89PNG")], steps
assert isinstance(result.images[0], bytes) and result.images[0].startswith(b"\x89PNG")
result.save(os.environ["W_OUT"])
heavy = sorted(m for m in ("torch", "PIL", "numpy", "diffusers") if m in sys.modules)
print("OK", heavy)
"""


def test_the_client_runs_in_a_torch_free_interpreter(jobs_worker, tmp_path):
    vendor = tmp_path / "vendor" / "brushwork"
    vendor.mkdir(parents=True)
    for name in STDLIB_MODULES:
        shutil.copy(SDK / name, vendor / name)
    (vendor / "__init__.py").write_text("")
    script = tmp_path / "use_client.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(vendor.parent)!r})\n" + TORCH_FREE_SCRIPT)
    env = {"W_URL": jobs_worker.url, "W_TOKEN": jobs_worker.token, "W_OUT": str(tmp_path / "out.png"),
           "BRUSHWORK_HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "")}
    # -I -S: no site-packages at all, like Blender's Python without torch or Pillow.
    run = subprocess.run([sys.executable, "-I", "-S", str(script)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "OK []"
    assert (tmp_path / "out.png").read_bytes().startswith(b"\x89PNG")
