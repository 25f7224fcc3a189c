"""``earshot adapt`` on the host and ``bench/adapt.py`` (sweeps, held-out folds, counts)."""

import json
import os
import subprocess
import sys

import pytest
from adapt_support import _speechlike
from earshot.cli import main as cli_main
from earshot.model import Model
from earshot.paths import ROOT


def test_cli_adapt_host_and_errors(tmp_path, capsys, monkeypatch):
    from earshot.board import ports

    assert cli_main(["adapt"]) == 2
    assert "give FILEs" in capsys.readouterr().err
    # --rollback with --port auto (the default) and no board anywhere: one line, exit 2.
    monkeypatch.delenv(ports.ENV, raising=False)
    monkeypatch.setattr(ports, "usb_ports", lambda: [])
    monkeypatch.setattr(ports, "VBOARD_PORT", tmp_path / "no-board.tty")
    assert cli_main(["adapt", "--rollback"]) == 2
    assert "--port" in capsys.readouterr().err
    wav = tmp_path / "a.wav"
    import soundfile

    soundfile.write(wav, _speechlike(5), 16000, subtype="PCM_16")
    out = tmp_path / "adapted.bin"
    assert cli_main(["adapt", str(wav), "--out", str(out), "--prune", "2"]) == 2
    assert cli_main(["adapt", str(wav), "--out", str(out)]) == 0
    res = __import__("json").loads(capsys.readouterr().out)
    assert res["blob_bytes"] == len(out.read_bytes())
    Model(out.read_bytes())


def _bench_adapt(*args, **kw):
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "adapt.py"), *args],
        check=False, capture_output=True, text=True, timeout=600, **kw,
    )


@pytest.mark.slow
def test_bench_sweep_grid_is_checked_and_used(data):
    # A grid without one list per channel group is refused, naming the problem.
    bad = _bench_adapt("--sweep", "--sweep-grid", "[[0.25]]")
    assert bad.returncode != 0
    assert "one non-empty list of ratios per channel group" in bad.stderr
    # A one-candidate grid that meets the size targets is the sweep's answer.
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--json", "--sweep-users", "1",
        "--sweep-grid", "[[0.25], [0], [0.5], [0.75], [0.75]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    assert res["best"]["ratios"] == [0.25, 0, 0.5, 0.75, 0.75]
    assert res["profile"] == [0.5, 0.0, 1.0, 1.5, 1.5]
    assert len(res["candidates"]) == 1


@pytest.mark.slow
def test_bench_sweep_holdout_scores_an_utterance_left_out_of_adaptation(data):
    # Holding out needs at least one utterance left to adapt on.
    bad = _bench_adapt("--sweep", "--sweep-holdout", "--k", "1")
    assert bad.returncode != 0 and "--sweep-holdout needs --k >= 2" in bad.stderr
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--sweep-holdout", "--json", "--sweep-users", "1",
        "--sweep-grid", "[[0.25], [0.25], [0.75], [0.5], [0.5]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    (row,) = json.loads(ok.stdout)["candidates"]
    # One held-out utterance for one user: at most one miss, a peak probability of 0..255.
    assert row["held_misses"] in (0, 1) and 0 <= row["held_peak"] <= 255
    # Detected by the student means a window mean at the cutoff, so a peak at least that.
    if row["held_peak"] and not row["held_misses"]:
        assert row["held_peak"] >= 0.9 * 255


@pytest.mark.slow
def test_bench_counts_the_utterances_it_tests_and_names_undecodable_ones(data):
    # The users' blocks hold undecodable files (the shared data's damaged FLACs): the bench
    # names them, tests each user on what is left, and counts only what it tested.
    from earshot.train import dataset

    k, n_users = 4, 4
    blocks = [dataset.dev_positives(data)[i : i + 10] for i in range(0, 10 * n_users, 10)]
    loaded = [dataset.load_clips(b) for b in blocks]
    bad = [p.name for _, failed in loaded for p, _ in failed]
    assert bad, "the first users' blocks have no undecodable file: pick other users"
    env = dict(os.environ, EARSHOT_DATA=str(data))
    res = _bench_adapt(
        "--json", "--users", str(n_users), "--ratios", "0.5", "--k", str(k), env=env
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["skipped_files"] == bad
    assert all(name in res.stderr for name in bad)
    tested = [len(clips) - k for clips, _ in loaded]
    assert [u["test_utterances"] for u in out["per_user"]] == tested
    assert out["test_utterances"] == sum(tested) < 6 * n_users
    assert out["users"] == n_users and out["users_left_out"] == []
    # False accepts on the training's validation negatives too: one factory count shared by
    # every user, one count per adapted and pruned model, averaged per hour of that stream.
    assert out["validation_negative_clips"] > 100 and 0.1 < out["validation_hours"] < 2
    assert len({u["fa_val_before"] for u in out["per_user"]}) == 1
    for key in ("fa_val_before", "fa_val_after", "fa_val_pruned"):
        mean = sum(u[key] for u in out["per_user"]) / n_users
        per_hour = mean / out["validation_hours"]
        got = out["fa_per_hour_" + key.removeprefix("fa_")]
        assert abs(got - per_hour) < 1e-3 * max(1.0, per_hour), key


def test_bench_adapt_cfg_overrides_are_checked():
    bad = _bench_adapt("--adapt-cfg", '{"distill_phase": 1}')
    assert bad.returncode != 0
    assert "unknown keys ['distill_phase']" in bad.stderr


@pytest.mark.slow
def test_bench_loo_holds_out_each_adaptation_utterance_in_turn(data):
    from earshot.train import dataset

    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt("--loo", "--json", "--users", "1", "--k", "2", env=env)
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    files = dataset.dev_positives(data)[:10]
    _, bad = dataset.load_clips(files)
    readable = [p.name for p in files if p not in {b for b, _ in bad}]
    assert [r["held_out"] for r in res["rows"]] == readable[:2]
    assert res["held_out"] == 2 and res["teacher_hits"] == sum(r["teacher"] for r in res["rows"])
    for r in res["rows"]:
        assert 0 <= r["student_peak"] <= 255
        if r["student"]:  # a detection needs a window mean at the cutoff
            assert r["student_peak"] >= 0.9 * 255
    assert res["student_peak_sum"] == sum(r["student_peak"] for r in res["rows"])


@pytest.mark.slow
def test_bench_sweep_loo_ranks_candidates_on_held_out_folds(data):
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--sweep-loo", "--jobs", "2", "--json", "--sweep-users", "1", "--k", "2",
        "--sweep-grid", "[[0.25], [0.25], [0.5, 0.75], [0.5, 0.75], [0.5]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    rows = res["candidates"]
    assert rows and all(r["held_out"] == 2 for r in rows)
    assert all(0 <= r["held_misses"] <= 2 and 0 <= r["held_peak"] <= 2 * 255 for r in rows)
    rank = [(r["held_misses"], -r["held_peak"], r["blob_bytes"]) for r in rows]
    assert res["best"] == rows[rank.index(min(rank))]
    assert res["profile"] == [round(x / 0.5, 4) for x in res["best"]["ratios"]]
