"""keras_binaural.files: output checks before any work, all-or-nothing writes, no debris."""

import errno
import os
import shutil

import pytest

from keras_binaural import files

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def test_a_plain_file_in_the_way_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(files.OutputError) as error:
        files.check_output(tmp_path / "afile" / "s.json", "--output_json")
    assert str(error.value) == (f"--output_json={tmp_path}/afile/s.json: {tmp_path}/afile is a "
                                f"file, so the folder {tmp_path}/afile cannot be created; choose "
                                "another path")
    with pytest.raises(files.OutputError, match=r"^--out=.*: is a folder; give a file name$"):
        files.check_output(tmp_path, "--out")
    with pytest.raises(files.OutputError, match=r"^--workdir=.*afile: is a file; give a folder"):
        files.check_output(tmp_path / "afile", "--workdir", folder=True)
    files.check_output(tmp_path / "new" / "deeper" / "s.json", "--output_json")  # can be created
    assert sorted(os.listdir(tmp_path)) == ["afile"]  # the check creates nothing


@pytest.mark.skipif(AS_ROOT, reason="root may write anywhere: the permission is simulated below")
def test_an_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(files.OutputError, match=r"permission denied: cannot write in .*locked"):
        files.check_output(locked / "s.json", "--output_json")
    with pytest.raises(files.OutputError, match=r"cannot create .*locked/sub in .*locked"):
        files.check_output(locked / "sub", "--output_dir", folder=True)


def test_an_unwritable_folder_is_refused_simulated(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != str(tmp_path))
    with pytest.raises(files.OutputError) as error:
        files.check_output(tmp_path / "s.json", "--output_json")
    assert str(error.value) == (f"--output_json={tmp_path}/s.json: permission denied: cannot "
                                f"write in {tmp_path}; choose a folder you can write")


def test_a_read_only_file_system_is_named(tmp_path, monkeypatch):
    real_statvfs = os.statvfs

    class ReadOnly:
        def __init__(self, result):
            self.f_flag = result.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly(real_statvfs(path)))
    with pytest.raises(files.OutputError) as error:
        files.check_output(tmp_path / "out" / "s.json", "--output_json")
    assert str(error.value) == (f"--output_json={tmp_path}/out/s.json: read-only file system: "
                                f"cannot create {tmp_path}/out in {tmp_path}; choose another "
                                "folder")


def test_too_little_space_is_refused_before_any_work(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=64_000))
    files.check_output(tmp_path / "a.wav", "--output_wav", needed_bytes=60_000)
    with pytest.raises(files.OutputError) as error:
        files.check_output(tmp_path / "a.wav", "--output_wav", needed_bytes=128_044)
    assert str(error.value) == (f"--output_wav={tmp_path}/a.wav: not enough space: this needs "
                                f"about 128 kB, {tmp_path} has 64 kB free; free space or choose "
                                "another folder")
    with pytest.raises(ValueError, match="not enough space"):  # the caller's error type
        files.check_output(tmp_path / "a.wav", "--output_wav", needed_bytes=10**6,
                           error=ValueError)


def test_a_transaction_renames_all_outputs_or_none(tmp_path):
    with files.transaction() as outputs:
        open(outputs.file(tmp_path / "a.json"), "w").close()
        folder = outputs.directory(tmp_path / "plots")
        open(os.path.join(folder, "p.png"), "w").close()
        assert not (tmp_path / "a.json").exists()  # nothing visible before the end
    assert sorted(os.listdir(tmp_path)) == ["a.json", "plots"]
    assert os.listdir(tmp_path / "plots") == ["p.png"]

    with pytest.raises(RuntimeError, match="in the middle"), files.transaction() as outputs:
        open(outputs.file(tmp_path / "b.json"), "w").close()
        outputs.file(tmp_path / "c.md")
        raise RuntimeError("in the middle")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "plots"]  # no b, no debris


def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(tmp_path):
    (tmp_path / "s.md").write_text("the old report")
    with pytest.raises(files.OutputError) as error, files.transaction() as outputs:
        open(outputs.file(tmp_path / "s.json"), "w").close()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), outputs.file(tmp_path / "s.md"))
    assert str(error.value) == (f"{tmp_path}/s.md: cannot write (No space left on device); the "
                                "disk is full: free space or choose another folder; nothing was "
                                "written")
    assert "\n" not in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["s.md"] and (tmp_path / "s.md").read_text() == (
        "the old report")
    with pytest.raises(files.OutputError) as error, files.transaction() as outputs:
        outputs.file(tmp_path / "w.h5")  # h5py puts a ten-line report in the OSError
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: time = ...\n, "
                      "filename = 'w.h5', errno = 28, ...)")
    assert str(error.value).startswith(f"{tmp_path}/w.h5: cannot write (No space left on device);")
    with (pytest.raises(files.OutputError, match=r"x.txt: cannot write \(disk full\)"),
          files.atomic_file(tmp_path / "x.txt")):
        raise OSError("disk full")  # no errno: e.g. a writer library's own message


def test_temporaries_of_a_killed_run_are_recognised_and_removed(tmp_path):
    leftovers = [".o.wav.abcd_123.tmp.wav", ".o.mp4.k2j4h5g6.tmp.mp4", ".1.zz9yy8xx.tmp",
                 ".epoch_0003.weights.h5.q1w2e3r4.tmp.weights.h5"]
    for name in leftovers[:2] + leftovers[3:]:
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / leftovers[2]).mkdir()
    (tmp_path / leftovers[2] / "saved_model.pb").write_bytes(b"half")
    keep = [".hidden", "o.wav", ".o.wav.tmp", "notes.tmp.txt"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    assert all(files.is_temporary(name) for name in leftovers)
    assert not any(files.is_temporary(name) for name in keep)
    with files.atomic_file(tmp_path / "fresh.json") as temporary:  # what this module makes
        assert files.is_temporary(temporary, of=["fresh.json"])
        assert not files.is_temporary(temporary, of=["fresh"])

    assert files.remove_temporaries(tmp_path, names=["o.wav"]) == 1
    assert files.remove_temporaries(tmp_path) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["fresh.json"])
    assert files.remove_temporaries(tmp_path / "missing") == 0
