"""Benchmark: zarr codecs for calibrated CTX I/F (float32) -- size and write speed.

Chooses ctxdask's default zarr codec by measurement (issue 12, item 9). A
synthetic full-width EDR (``ctxdask.testing.make_edr``: smooth terrain plus
+-4 DN of raw noise, SQROOT companded) is calibrated to I/F (with a synthetic
flat of 1 +- 3 % per detector pixel) once and held in
memory; then, for each codec, the I/F image is written to a fresh zarr (format
3) store in ``ctxdask.chunk-lines`` chunks, chunks encoded on two threads (the
two cores of the machine), best of ``--repeat`` runs, and the store's bytes on
disk are counted. Every row is measured in the same run as the uncompressed
baseline, interleaved, so the ratios hold even when the absolute times do not
(the machine is shared: timings are noisy).

Scaled integers: I/F stored as ``uint16`` with CF ``scale_factor`` and
``add_offset`` attributes and NaN as the ``_FillValue`` (what many archives do),
encoded inside the timed write. The benchmark prints the largest round-trip
error beside one raw DN step in I/F (the data's own quantisation: CTX sends
8-bit SQROOT-companded DN, so neighbouring I/F values are at least one
12-bit DN apart) and beside the noise.

Finally the end-to-end path: ``ctxdask.write(calibrate(open_edr(...)), "x.zarr",
compressor=...)`` on dask's threaded scheduler (2 threads) for no codec, zarr's
default (zstd level 0) and ctxdask's default.

Run: ``python benchmarks/zarr_codecs.py [--lines 8192] [--repeat 2] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import tempfile
import time
import warnings

import numpy as np

#: a detector flat: 1 +- 3 % per pixel (with a unity flat every line holds only ~256
#: distinct I/F values, which zstd's entropy coder packs far better than real data allows)
FLAT = (1.0 + 0.03 * np.random.default_rng(12).standard_normal(5000)).astype(np.float32)

#: CF packing of I/F into uint16: I/F = stored x SCALE + OFFSET, 65535 = NaN
SCALE, OFFSET, FILL = 2.0e-5, -0.05, 65535


def _codecs():
    from zarr.codecs import BloscCodec, ZstdCodec

    def blosc(cname, level, shuffle):
        return BloscCodec(cname=cname, clevel=level, shuffle=shuffle, typesize=4)

    return {
        "none": (None, False),
        "zstd level 0 (zarr's default)": (ZstdCodec(level=0), False),
        "zstd level 1": (ZstdCodec(level=1), False),
        "zstd level 3": (ZstdCodec(level=3), False),
        "zstd level 9": (ZstdCodec(level=9), False),
        "blosc lz4 5 shuffle": (blosc("lz4", 5, "shuffle"), False),
        "blosc lz4 5 bitshuffle": (blosc("lz4", 5, "bitshuffle"), False),
        "blosc zstd 1 shuffle": (blosc("zstd", 1, "shuffle"), False),
        "blosc zstd 1 bitshuffle": (blosc("zstd", 1, "bitshuffle"), False),
        "blosc zstd 3 bitshuffle": (blosc("zstd", 3, "bitshuffle"), False),
        "uint16 scaled, none": (None, True),
        "uint16 scaled, blosc lz4 5 bitshuffle": (BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle",
                                                              typesize=2), True),
        "uint16 scaled, blosc zstd 1 bitshuffle": (BloscCodec(cname="zstd", clevel=1,
                                                               shuffle="bitshuffle", typesize=2), True),
    }


def _pack(block: np.ndarray) -> np.ndarray:
    packed = np.rint((block - OFFSET) / SCALE)
    packed[~np.isfinite(block)] = FILL
    return packed.astype(np.uint16)


def _unpack(packed: np.ndarray) -> np.ndarray:
    out = packed.astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET)
    out[packed == FILL] = np.nan
    return out


def _du(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_once(iof: np.ndarray, path: pathlib.Path, codec, scaled: bool, chunk_lines: int) -> float:
    """Write ``iof`` to a new zarr array at ``path``, chunks encoded on two threads; return seconds."""
    import zarr

    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    array = zarr.create_array(
        path, shape=iof.shape, chunks=(chunk_lines, iof.shape[1]),
        dtype=np.uint16 if scaled else np.float32, compressors=codec,
        fill_value=FILL if scaled else np.nan, write_data=True,
    )

    def one(start):
        block = iof[start : start + chunk_lines]
        array[start : start + chunk_lines] = _pack(block) if scaled else block

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, range(0, iof.shape[0], chunk_lines)))
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=8192, help="EDR lines (full width, 5056 samples)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", help="working folder (default: a temporary one, removed)")
    args = parser.parse_args()

    import dask
    import zarr

    import ctxdask
    from ctxdask import config
    from ctxdask.testing import make_edr

    zarr.config.set({"threading.max_workers": 2})
    chunk_lines = int(config.get("chunk-lines", 4096))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = pathlib.Path(tmp)
        edr = make_edr(work / "B10_013341_1010_XN_79S172W.IMG", lines=args.lines)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unity flat
            cal = ctxdask.calibrate(ctxdask.open_edr(edr), flat=FLAT, units="iof")
            iof = cal.image.compute(scheduler="threads", num_workers=2).values
        step = float(cal.image.attrs["iof_factor"])  # I/F of one decompanded DN at unity flat
        print(f"EDR {args.lines} x {iof.shape[1]} (synthetic, {edr.stat().st_size / 1e6:.0f} MB), "
              f"I/F float32 {iof.nbytes / 1e6:.0f} MB, {chunk_lines}-line chunks, 2 threads, "
              f"best of {args.repeat}; zarr {zarr.__version__}")

        codecs = _codecs()
        times = {name: [] for name in codecs}
        sizes = {}
        for _ in range(args.repeat):  # interleaved: a slow spell hits every row alike
            for name, (codec, scaled) in codecs.items():
                path = work / "out.zarr"
                times[name].append(write_once(iof, path, codec, scaled, chunk_lines))
                sizes[name] = _du(path)
                if scaled:
                    back = _unpack(zarr.open_array(path)[:])
                    finite = np.isfinite(iof)
                    assert np.array_equal(finite, np.isfinite(back))
                    err = float(np.abs(back[finite] - iof[finite]).max())
                    sizes[name, "err"] = err
                elif codec is not None:
                    assert np.array_equal(zarr.open_array(path)[:], iof, equal_nan=True)
        shutil.rmtree(work / "out.zarr", ignore_errors=True)

        base_t, base_s = min(times["none"]), sizes["none"]
        print("\n| codec | MB | size vs none | write s | time vs none | MB/s (of float32) |")
        print("|---|---|---|---|---|---|")
        for name in codecs:
            t = min(times[name])
            print(f"| {name} | {sizes[name] / 1e6:.1f} | {sizes[name] / base_s:.2f} | {t:.2f} | "
                  f"{t / base_t:.1f}x | {iof.nbytes / 1e6 / t:.0f} |")

        finite = iof[np.isfinite(iof)]
        rough = np.diff(iof[:, 1000:4000], axis=1)  # neighbour differences: noise + terrain
        print(f"\nscaled uint16: I/F = stored x {SCALE:g} + ({OFFSET:g}), range "
              f"[{OFFSET:g}, {OFFSET + SCALE * (FILL - 1):.3f}]; data range [{finite.min():.4f}, "
              f"{finite.max():.4f}]; largest round-trip error {sizes['uint16 scaled, none', 'err']:.2e} "
              f"(half the scale: {SCALE / 2:.1e}); one decompanded DN is {step:.2e} I/F at flat 1; "
              f"float32 spacing at the data's median {np.spacing(np.float32(np.median(finite))):.1e}; "
              f"neighbour-difference std (noise) {np.nanstd(rough) / np.sqrt(2):.2e}")

        # end to end, through ctxdask's writer
        from zarr.codecs import ZstdCodec

        default = config.get("zarr.compressor")
        label = " ".join(str(v) for v in default.values()) if isinstance(default, dict) else str(default)
        rows = {"none": {"compressor": None}, "zarr's default (zstd level 0)": {"compressor": ZstdCodec(level=0)},
                f"ctxdask's default ({label})": {}}
        e2e = {name: [] for name in rows}
        with dask.config.set(scheduler="threads", num_workers=2), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctxdask.write(ctxdask.calibrate(ctxdask.open_edr(edr), flat=FLAT, units="iof"),
                          work / "warm-up.zarr")  # first calls, untimed
            for run in range(args.repeat):
                order = list(rows.items())
                for name, kwargs in order[run % len(order):] + order[: run % len(order)]:
                    out = work / f"e2e-{len(e2e[name])}.zarr"
                    t0 = time.perf_counter()
                    ctxdask.write(ctxdask.calibrate(ctxdask.open_edr(edr), flat=FLAT, units="iof"), out,
                                  **kwargs)
                    e2e[name].append((time.perf_counter() - t0, _du(out)))
                    shutil.rmtree(out)
        print("\n| ctxdask.write(calibrate(open_edr(EDR)), 'x.zarr') | s | MB |")
        print("|---|---|---|")
        for name, runs in e2e.items():
            print(f"| {name} | {min(t for t, _ in runs):.2f} | {runs[0][1] / 1e6:.1f} |")
    print(f"\n(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: timings are noisy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
