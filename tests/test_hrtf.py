import bz2
import importlib.util
import pickle

import h5py
import numpy as np
import pytest

from keras_binaural.data import hrtf

needs_kemar = pytest.mark.skipif(
    importlib.util.find_spec("slab") is None,
    reason="MIT KEMAR comes with the PyPI package slab (pip install slab)",
)

RATE_HZ = 32000  # the tiny test files are resampled to 16 kHz
TAPS = 64


def toy_hrir(azimuth_deg: float, taps: int = TAPS) -> np.ndarray:
    """[2, taps] impulses: the ear facing the source is louder and earlier (+azimuth = left)."""
    lateral = np.sin(np.radians(azimuth_deg))
    ir = np.zeros((2, taps))
    for ear, side in ((0, 1.0), (1, -1.0)):  # left, right
        delay = round(20 - 8 * side * lateral)
        ir[ear, delay] = 10 ** (6 * side * lateral / 20)
    return ir


def write_sofa(
    path, azimuths, elevations=None, data_type="FIR", receivers=2, cartesian=False, receiver_y=None
):
    azimuths = np.asarray(azimuths, dtype=float)
    elevations = (
        np.zeros_like(azimuths) if elevations is None else np.asarray(elevations, dtype=float)
    )
    ir = np.stack([toy_hrir(a) for a in azimuths])[:, :receivers]
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = np.bytes_("SOFA")
        f.attrs["SOFAConventions"] = np.bytes_("SimpleFreeFieldHRIR")
        f.attrs["DataType"] = np.bytes_(data_type)
        if data_type == "FIR":
            f["Data.IR"] = ir
        else:
            f["Data.Real"] = ir
        f["Data.SamplingRate"] = np.array([RATE_HZ], dtype=float)
        f["Data.Delay"] = np.zeros((1, receivers))
        if cartesian:
            a, e = np.radians(azimuths), np.radians(elevations)
            position = (
                np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=1) * 1.5
            )
            f["SourcePosition"] = position
            f["SourcePosition"].attrs["Type"] = np.bytes_("cartesian")
        else:
            f["SourcePosition"] = np.stack(
                [azimuths, elevations, np.full_like(azimuths, 1.5)], axis=1
            )
            f["SourcePosition"].attrs["Type"] = np.bytes_("spherical")
            f["SourcePosition"].attrs["Units"] = np.bytes_("degree, degree, metre")
        if receiver_y is not None:
            f["ReceiverPosition"] = np.array([[0.0, receiver_y[0], 0.0], [0.0, receiver_y[1], 0.0]])
            f["ReceiverPosition"].attrs["Type"] = np.bytes_("cartesian")
    return str(path)


def energy_db(pair):
    energy = np.sum(np.square(pair.astype(np.float64)), axis=-2)
    return 10 * np.log10(energy[..., 0] / energy[..., 1])


def test_read_sofa_keeps_the_horizontal_plane_resampled(tmp_path):
    azimuths = [0, 90, 180, 270, 45, 0, 90]
    elevations = [0, 0, 0, 0, 0, 30, 30]
    hrirs = hrtf.read_sofa(write_sofa(tmp_path / "toy.sofa", azimuths, elevations))
    np.testing.assert_allclose(hrirs.azimuths_deg, [-180, -90, 0, 45, 90])
    assert hrirs.sample_rate_hz == 16000
    assert hrirs.hrirs.shape == (5, TAPS // 2, 2) and hrirs.hrirs.dtype == np.float32
    assert hrirs.distance_m == pytest.approx(1.5)
    left = hrirs.hrir(90.0)
    assert energy_db(left) == pytest.approx(12.0, abs=0.5)  # +azimuth is left: left ear louder
    assert np.argmax(np.abs(left[:, 0])) < np.argmax(np.abs(left[:, 1]))  # and earlier
    assert energy_db(hrirs.hrir(-90.0)) == pytest.approx(-12.0, abs=0.5)


def test_cartesian_positions_and_right_first_receivers(tmp_path):
    path = write_sofa(
        tmp_path / "cart.sofa", [0, 90, 180, 270], cartesian=True, receiver_y=(-0.09, 0.09)
    )
    hrirs = hrtf.read_sofa(path)
    np.testing.assert_allclose(hrirs.azimuths_deg, [-180, -90, 0, 90], atol=1e-9)
    # Receiver 0 sits at y < 0 (the right ear), so the channels were swapped to (left, right).
    assert energy_db(hrirs.hrir(90.0)) == pytest.approx(-12.0, abs=0.5)


def test_interpolation_is_exact_at_measurements_and_time_aligned_between(tmp_path):
    hrirs = hrtf.read_sofa(write_sofa(tmp_path / "toy.sofa", np.arange(0, 360, 30)))
    index = int(np.argmax(hrirs.azimuths_deg == 60.0))
    np.testing.assert_allclose(hrirs.hrir(60.0), hrirs.hrirs[index], atol=1e-6)
    np.testing.assert_allclose(hrirs.hrir(420.0), hrirs.hrirs[index], atol=1e-6)  # wraps
    # Between 0 and 30 deg the two measured impulses arrive at different times. Plain linear
    # interpolation would give two half-height peaks; aligned interpolation gives one peak,
    # arriving in between.
    middle = hrirs.hrir(15.0)
    onsets = hrtf.onset_samples(hrirs.hrirs_at([0.0, 15.0, 30.0]).transpose(0, 2, 1))
    assert onsets[0, 0] > onsets[1, 0] > onsets[2, 0]  # left ear: earlier as the source turns left
    expected_peak = 0.5 * (np.abs(hrirs.hrir(0.0)).max(0) + np.abs(hrirs.hrir(30.0)).max(0))
    np.testing.assert_allclose(np.abs(middle).max(0), expected_peak, rtol=0.15)
    assert np.all(np.diff(energy_db(hrirs.hrirs_at(np.arange(0, 91, 10)))) > 0)


def test_gap_too_wide_is_an_error(tmp_path):
    hrirs = hrtf.read_sofa(write_sofa(tmp_path / "front.sofa", [-30, 0, 30]))
    hrirs.hrir(20.0)
    with pytest.raises(
        hrtf.HrtfError, match=r"front\.sofa: no measured horizontal direction near azimuth 120"
    ):
        hrirs.hrir(120.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"azimuths": [0, 90], "elevations": [10, 20]}, "no horizontal-plane directions"),
        ({"azimuths": [0, 90], "data_type": "TF"}, "not HRIR data"),
        ({"azimuths": [0, 90], "receivers": 1}, "not HRIR data for two ears"),
    ],
)
def test_unusable_sofa_files_name_the_file_and_problem(tmp_path, kwargs, message):
    path = write_sofa(tmp_path / "bad.sofa", **kwargs)
    with pytest.raises(hrtf.HrtfError, match=message) as error:
        hrtf.load_hrirs(path)
    assert str(error.value).startswith(str(path))


def test_not_a_sofa_file_and_unknown_names(tmp_path):
    text = tmp_path / "notes.sofa"
    text.write_text("not hdf5")
    with pytest.raises(hrtf.HrtfError, match="notes.sofa: not a SOFA file"):
        hrtf.read_sofa(text)
    with pytest.raises(hrtf.HrtfError, match="missing.sofa: no such SOFA file"):
        hrtf.load_hrirs(str(tmp_path / "missing.sofa"))
    with pytest.raises(
        hrtf.HrtfError, match="cipic: unknown HRTF; use 'kemar' or the path of a .sofa file"
    ):
        hrtf.load_hrirs("cipic")


def test_load_hrirs_is_cached_until_the_file_changes(tmp_path):
    path = write_sofa(tmp_path / "toy.sofa", [0, 90, 180, 270])
    first = hrtf.load_hrirs(path)
    assert hrtf.load_hrirs(path) is first
    write_sofa(path, np.arange(0, 360, 45))
    assert len(hrtf.load_hrirs(path).azimuths_deg) == 8


@needs_kemar
def test_kemar_horizontal_plane_at_16khz():
    hrirs = hrtf.load_hrirs("kemar")
    assert hrirs is hrtf.load_hrirs("KEMAR")
    assert hrirs.sample_rate_hz == 16000 and hrirs.hrirs.shape == (72, 186, 2)
    np.testing.assert_allclose(np.diff(hrirs.azimuths_deg), 5.0)
    ild = energy_db(hrirs.hrirs_at([0.0, 30.0, 60.0, -60.0]))
    assert abs(ild[0]) < 0.1 and 0 < ild[1] < ild[2] and ild[3] == pytest.approx(-ild[2], abs=0.5)


@needs_kemar
def test_kemar_unpickler_refuses_anything_but_numpy_and_slab_stand_ins(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = tmp_path / "evil.bz2"
    path.write_bytes(bz2.compress(pickle.dumps(Evil())))
    with pytest.raises(hrtf.HrtfError, match="refusing to load builtins.print"):
        hrtf.read_kemar(path)
