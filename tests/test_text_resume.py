"""Resuming an interrupted one-hot training gives the uninterrupted result, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attnmech.data.dataset import Dataset  # noqa: E402
from attnmech.errors import CheckpointError  # noqa: E402
from attnmech.layer.onehot import read_checkpoint, train_onehot  # noqa: E402
from attnmech.layer.training import TrainConfig  # noqa: E402
from attnmech.theory.solve import solve  # noqa: E402


class Interrupted(Exception):
    pass


def _dataset(vocab: int = 12) -> Dataset:
    rng = np.random.default_rng(3)
    stream = rng.integers(0, vocab, 900)
    seqs, labels = [], []
    for start in range(0, stream.size - 7, 7):
        window, label = stream[start : start + 6], stream[start + 6]
        if label in window:
            seqs.append(window.tolist())
            labels.append(int(label))
    return Dataset(seqs, labels, "onehot", vocab_size=vocab)


def _interrupt_at(step_to_stop: int):
    def callback(step, metrics):
        if step >= step_to_stop:
            raise Interrupted(step)
        return False

    return callback


@pytest.mark.parametrize("optimizer", ["split-ngd", "adam"])
def test_resumed_training_equals_uninterrupted(tmp_path, optimizer):
    ds = _dataset()
    theory = solve(ds)
    options = {"lower_bound": float(theory.finite.loss)} if optimizer == "split-ngd" else {}
    config = TrainConfig(
        optimizer=optimizer, optimizer_options=options, learning_rate=0.5, steps=90, log_every=5
    )
    whole = train_onehot(ds, config, theory=theory)
    ckpt = tmp_path / "train.ckpt.npz"
    kwargs = {"theory": theory, "checkpoint_path": ckpt, "checkpoint_every": 7, "resume": True}
    with pytest.raises(Interrupted):
        train_onehot(ds, config, callback=_interrupt_at(47), **kwargs)
    # the callback runs at logged steps (multiples of 5): raised at 50, after the checkpoint 49
    assert read_checkpoint(ckpt).meta["step"] == 49
    with pytest.raises(Interrupted):  # interrupted again, after resuming
        train_onehot(ds, config, callback=_interrupt_at(66), **kwargs)
    assert read_checkpoint(ckpt).meta["step"] == 63  # raised at 70, before its checkpoint
    resumed = train_onehot(ds, config, **kwargs)
    np.testing.assert_array_equal(resumed.layer.keys, whole.layer.keys)
    np.testing.assert_array_equal(resumed.layer.values, whole.layer.values)
    assert resumed.layer.rest_sq == whole.layer.rest_sq
    assert sorted(resumed.history) == sorted(whole.history)
    for key, value in whole.history.items():
        np.testing.assert_array_equal(resumed.history[key], value, err_msg=key)
    assert resumed.num_steps == whole.num_steps == 90


def test_checkpoint_of_other_options_or_data_is_refused(tmp_path):
    ds = _dataset()
    config = TrainConfig(optimizer="ngd", learning_rate=0.5, steps=30, log_every=5)
    ckpt = tmp_path / "train.ckpt.npz"
    with pytest.raises(Interrupted):
        train_onehot(
            ds, config, checkpoint_path=ckpt, checkpoint_every=4, callback=_interrupt_at(20)
        )
    other = TrainConfig(optimizer="ngd", learning_rate=0.25, steps=30, log_every=5, seed=3)
    with pytest.raises(CheckpointError, match=r"learning_rate 0\.5 \(now 0\.25\), seed 0"):
        train_onehot(ds, other, checkpoint_path=ckpt, checkpoint_every=4, resume=True)
    with pytest.raises(CheckpointError, match="other data"):
        train_onehot(_dataset(13), config, checkpoint_path=ckpt, checkpoint_every=4, resume=True)
    # an edited checkpoint is refused by its checksum
    with np.load(ckpt) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["theta"] = arrays["theta"] + 1.0
    np.savez(ckpt, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        train_onehot(ds, config, checkpoint_path=ckpt, checkpoint_every=4, resume=True)


# ---------------------------------------------------------------------------------- the study
WORDS = (
    "the cat saw the dog and the dog saw the cat the cat ran and the dog ran "
    "a cat saw a dog and a dog saw the cat the dog ran and a cat ran the end "
) * 3


def _numbers(out):
    """results.json without the timings (the numbers a resumed run must reproduce)."""
    import json

    data = json.loads((out / "results.json").read_text())
    for key in ("timings", "wall_seconds", "peak_rss_mb", "evaluated_seconds"):
        data.pop(key, None)
    data["train"].pop("seconds", None)
    data["theory"].pop("solve_seconds", None)
    return data


def _text_config(tmp_path, **options):
    from attnmech.studies.text import TextConfig

    corpus = tmp_path / "hand.txt"
    corpus.write_text(WORDS, encoding="utf-8")
    base = {
        "corpus": str(corpus),
        "vocab_size": 8,
        "seq_len": 4,
        "holdout": 0.3,
        "steps": 60,
        "n_prompts": 1,
        "generate_length": 3,
        "n_examples": 1,
        "checkpoint_every": 9,
    }
    base.update(options)
    return TextConfig(**base)


def test_interrupted_text_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    import attnmech.layer.onehot as onehot
    from attnmech.layer.onehot import OneHotLayer
    from attnmech.studies.text import run

    config = _text_config(tmp_path)
    whole = tmp_path / "whole"
    run(config, out_dir=whole)
    assert not (whole / "checkpoint.npz").exists()  # removed once the run is written

    saves = []
    original = onehot._save_checkpoint

    def killed_after_third(*args, **kwargs):
        original(*args, **kwargs)
        saves.append(args[3])
        if len(saves) == 3:
            raise Interrupted("killed")

    monkeypatch.setattr(onehot, "_save_checkpoint", killed_after_third)
    part = tmp_path / "part"
    with pytest.raises(Interrupted):
        run(config, out_dir=part)
    monkeypatch.setattr(onehot, "_save_checkpoint", original)
    assert saves == [9, 18, 27] and (part / "checkpoint.npz").is_file()
    assert not (part / "results.json").exists()

    messages = []
    run(config, out_dir=part, resume=True, progress=messages.append)
    assert any("resuming the training from step 27" in m for m in messages)
    assert _numbers(part) == _numbers(whole)
    a, b = OneHotLayer.load(whole / "layer.npz"), OneHotLayer.load(part / "layer.npz")
    np.testing.assert_array_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.values, b.values)
    assert not (part / "checkpoint.npz").exists()


def test_resume_onto_another_config_names_the_fields(tmp_path, monkeypatch):
    import attnmech.layer.onehot as onehot
    from attnmech.errors import InvalidParameterError
    from attnmech.studies.text import run

    config = _text_config(tmp_path)

    def killed(*args, **kwargs):
        raise Interrupted("killed")

    original = onehot._save_checkpoint

    def once(*args, **kwargs):
        original(*args, **kwargs)
        killed()

    monkeypatch.setattr(onehot, "_save_checkpoint", once)
    with pytest.raises(Interrupted):
        run(config, out_dir=tmp_path / "out")
    monkeypatch.setattr(onehot, "_save_checkpoint", original)
    other = config.replace(learning_rate=0.5, seq_len=5)
    with pytest.raises(InvalidParameterError, match="differs in learning_rate, seq_len"):
        run(other, out_dir=tmp_path / "out", resume=True)
    # checkpoint_every does not change the numbers: resuming with another value is fine
    run(config.replace(checkpoint_every=4), out_dir=tmp_path / "out", resume=True)
    with pytest.raises(InvalidParameterError, match="finished run of another config.*steps"):
        run(config.replace(steps=61), out_dir=tmp_path / "out", resume=True)


@pytest.mark.slow
def test_cli_run_killed_by_sigkill_resumes_to_the_same_result(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from attnmech.layer.onehot import OneHotLayer, read_checkpoint

    corpus = tmp_path / "hand.txt"
    corpus.write_text(WORDS, encoding="utf-8")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [sys.executable, "-m", "attnmech", "text", str(corpus), "--K", "8", "--T", "4"]
    args += ["--holdout", "0.3", "--steps", "4000", "--checkpoint-every", "25", "-q"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    subprocess.run([*args, "--out", str(whole)], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*args, "--out", str(part)], env=env, stdout=subprocess.DEVNULL)
    ckpt = part / "checkpoint.npz"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.is_file():
            try:
                if read_checkpoint(ckpt).meta["step"] >= 500:
                    break
            except Exception:  # noqa: BLE001 - being replaced at this moment
                pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "results.json").exists(), "the run finished before it was killed"
    killed_at = read_checkpoint(ckpt).meta["step"]
    assert 500 <= killed_at < 4000
    done = subprocess.run(
        [*args, "--out", str(part), "--resume"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert _numbers(part) == _numbers(whole)
    a, b = OneHotLayer.load(whole / "layer.npz"), OneHotLayer.load(part / "layer.npz")
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.keys, b.keys)


def test_saved_files_are_checked_when_evaluated_again(tmp_path):
    import shutil

    from attnmech.errors import FileFormatError
    from attnmech.studies.text import evaluate_dir, run

    config = _text_config(tmp_path, steps=20)
    out = tmp_path / "out"
    run(config, out_dir=out)
    evaluate_dir(out, write=False)  # the new format reads back
    keep = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".npz"}

    # rewriting the folder takes its lock: refused while another writer holds it
    from attnmech._io import exclusive_lock
    from attnmech.errors import OutputError

    results = (out / "results.json").read_bytes()
    with exclusive_lock(out, what="text run folder"):
        with pytest.raises(OutputError, match="another attnmech process"):
            evaluate_dir(out)
        evaluate_dir(out, write=False)  # reading needs no lock
    assert (out / "results.json").read_bytes() == results
    evaluate_dir(out)  # and once the holder is gone, it writes

    # an edited layer is refused by its checksum
    with np.load(out / "layer.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["values"] = arrays["values"] * 2
    np.savez(out / "layer.npz", **arrays)
    with pytest.raises(FileFormatError, match="checksum"):
        evaluate_dir(out, write=False)
    (out / "layer.npz").write_bytes(keep["layer.npz"])

    # a layer of another run (other seq_len: other training windows) is refused
    other = tmp_path / "other"
    run(config.replace(seq_len=5), out_dir=other)
    shutil.copy(other / "layer.npz", out / "layer.npz")
    with pytest.raises(FileFormatError, match="other training data"):
        evaluate_dir(out, write=False)
    (out / "layer.npz").write_bytes(keep["layer.npz"])

    # a folder of the format before checksums gets a clear error
    with np.load(out / "windows.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
    np.savez(out / "windows.npz", **arrays)
    with pytest.raises(FileFormatError, match="earlier attnmech.*run the study again"):
        evaluate_dir(out, write=False)
