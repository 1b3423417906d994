"""Command lines of ASP's C++ programs, as boost::program_options parses them (test stand-ins).

NOT THE REAL PROGRAMS. ``asp::check_command_line`` (src/asp/Core/AspProgramOptions.cc:55-110)
parses with ``po::command_line_style::unix_style`` (long options with ``=`` or the next
token, unambiguous abbreviations, short options) and turns any ``po::error`` into
``ArgumentErr "Error parsing input:\\n<boost message>\\n<usage>"``; ``ASP_STANDARD_CATCHES``
(src/asp/Core/Macros.h:25-38) prints an ``ArgumentErr`` as ``\\n\\nERROR: <what>\\n\\n`` on
``vw_out()`` (stdout) and returns 1. The option tables below are the options the
programs register, with the number of tokens each takes (0 for a ``bool_switch``, 2 for
a ``Vector2``/``Vector2i``, 3 for a ``Vector3``, 4 for a ``BBox2``/``BBox2i``, else 1):

``STEREO``
    ``generate_config_file_options`` + ``addAspGlobalOptions``
    (src/asp/Core/StereoSettings.cc:105-740): every stereo executable
    (``stereo_parse``, ``stereo_pprc``, ...) accepts all of them on the command line
    (``configStereoOpts``, src/asp/Tools/stereo.cc:324-349).
``GDAL_WRITE``
    ``vw::GdalWriteOptionsDescription`` (visionworkbench src/vw/FileIO/GdalWriteOptions.cc).
``MAPPROJECT_SINGLE``
    src/asp/Tools/mapproject_single.cc:53-114.
``DEM_MOSAIC``
    src/asp/Core/DemMosaicParse.cc:40-200 (with ``--tif-tile-size`` instead of
    ``--tile-size`` in the GDAL options).
``BUNDLE_ADJUST``
    ``handleBaArgs`` (src/asp/Sessions/BundleAdjustParse.cc:752-1295; ``GdalWriteOptionsDescription``,
    :1297, is added by ``_asp_dem.parse_options``); the ``vw::Vector2``/``Vector2i`` fields take 2
    tokens, the ``BBox2`` ones 4 (src/asp/Camera/BundleAdjustOptions.h:57-64).
"""

from __future__ import annotations

import sys

ASP_VERSION = "3.7.0"

GDAL_WRITE = {"threads": 1, "tile-size": 2, "cache-size-mb": 1, "no-bigtiff": 0, "tif-compress": 1,
              "version,v": 0, "help,h": 0}

STEREO = dict(item.rsplit(":", 1) for item in """
session-type,t:1 stereo-file,s:1 alignment-method:1 left-image-crop-win:4 right-image-crop-win:4 proj-win:4
force-use-entire-range:0 individually-normalize:0 ip-per-tile:1 ip-per-image:1 matches-per-tile:1
ip-detect-method:1 epipolar-threshold:1 ip-edge-buffer:1 normalize-ip-tiles:0 dem:1 matches-as-txt:0
ip-inlier-factor:1 ip-uniqueness-threshold:1 ip-nodata-radius:1 ip-triangulation-max-error:1
ip-num-ransac-iterations:1 disable-tri-ip-filter:0 ip-debug-images:0 num-obalog-scales:1 nodata-value:1
stddev-mask-kernel:1 stddev-mask-thresh:1 skip-rough-homography:0 no-datum:0 skip-image-normalization:0
force-reuse-match-files:0 part-of-multiview-run:0 global-alignment-threshold:1 local-alignment-threshold:1
alignment-num-ransac-iterations:1 outlier-removal-params:2 matches-per-tile-params:2 datum:1
match-files-prefix:1 clean-match-files-prefix:1 band:1 ip-match-radius:1 flann-method:1 left-image-clip:1
right-image-clip:1 accept-provided-mapproj-dem:0 allow-different-mapproject-gsd:0
allow-different-gsd-in-correlator-mode:0 ortho-heights:2 output-prefix-override:1 left-bathy-mask:1
right-bathy-mask:1 bathy-plane:1 bathy-plane-list:1 refraction-index:1 output-cloud-type:1
stop-after-stats:0 stereo-dist-mode:0 mapproj-geolocation-uncertainty:1 prefilter-mode:1
prefilter-kernel-width:1 corr-seed-mode:1 min-matches:1 min-num-ip:1 corr-sub-seed-percent:1
disparity-range-expansion-percent:1 cost-mode:1 xcorr-threshold:1 min-xcorr-level:1
save-left-right-disparity-difference:0 corr-kernel:2 corr-search:4 max-disp-spread:1 corr-search-limit:4
ip-filter-using-dem:1 elevation-limit:2 lon-lat-limit:4 corr-max-levels:1 rm-min-matches:1 rm-threshold:1
rm-quantile-percentile:1 rm-quantile-multiple:1 skip-low-res-disparity-comp:0
compute-low-res-disparity-only:0 disparity-estimation-dem:1 disparity-estimation-dem-error:1
disparity-estimation-sample-rate:1 corr-timeout:1 stereo-algorithm:1 corr-blob-filter:1 corr-tile-size:1
sgm-collar-size:1 sgm-search-buffer:2 corr-memory-limit-mb:1 correlator-mode:0 stereo-debug:0
local-alignment-debug:0 h-kernel:1 v-kernel:1 subpixel-mode:1 subpix-from-blend:0 subpixel-kernel:2
disable-h-subpixel:0 disable-v-subpixel:0 subpixel-max-levels:1 phase-subpixel-accuracy:1
subpixel-h-kernel:1 subpixel-v-kernel:1 filter-mode:1 rm-half-kernel:2 max-mean-diff:1 rm-cleanup-passes:1
enable-fill-holes:0 disable-fill-holes:0 fill-holes-max-size:1 edge-buffer-size:1 erode-max-size:1
median-filter-size:1 texture-smooth-size:1 texture-smooth-scale:1 gotcha-disparity-refinement:0
casp-go-param-file:1 rm-h-half-kern:1 rm-v-half-kern:1 universe-center:1 near-universe-radius:1
far-universe-radius:1 min-triangulation-angle:1 max-valid-triangulation-error:1 bundle-adjust-prefix:1
propagate-errors:0 horizontal-stddev:2 position-covariance-factor:1 orientation-covariance-factor:1
unalign-disparity:0 num-matches-from-disparity:1 num-matches-from-disp-triplets:1
point-cloud-rounding-error:1 save-double-precision-point-cloud:0 compute-point-cloud-center-only:0
skip-point-cloud-center-comp:0 compute-error-vector:0 enable-atmospheric-refraction-correction:0
enable-velocity-aberration-correction:0 grid-cols:1 window-size:2 single-window,w:0
view-several-side-by-side:0 use-georef,g:0 hillshade:0 hillshade-azimuth:1 hillshade-elevation:1
lowest-resolution-subimage-num-pixels:1 view-matches:0 match-file:1 gcp-file:1 gcp-sigma:1 dem-file:1
hide-all:0 delete-temporary-files-on-exit:0 create-image-pyramids-only:0 pairwise-matches:0
pairwise-clean-matches:0 nvm:1 nvm-no-shift:0 isis-cnet:1 zoom-proj-win:4 zoom-all-to-same-region:0
csv-format:1 csv-srs:1 csv-datum:1 preview:0 min:1 max:1 plot-point-radius:1 font-size:1 no-georef:0
parallel-tile-size:2 stereo-dist-tile-params:2 tile-at-location:1 nodes-list:1 ssh:1 processes:1
threads-multiprocess:1 threads-singleprocess:1 entry-point,e:1 stop-point:1 job-size-w:1 job-size-h:1
sparse-disp-options:1 prev-run-prefix:1 parallel-options:1 trans-crop-win:4
attach-georeference-to-lowres-disparity:0
""".split())
STEREO = {name: int(n) for name, n in STEREO.items()} | GDAL_WRITE

MAPPROJECT_SINGLE = {
    "nodata-value": 1, "t_srs": 1, "tr": 1, "mpp": 1, "ppd": 1, "datum-offset": 1, "query-projection": 0,
    "write-wkt": 0, "session-type,t": 1, "t_projwin": 4, "t_pixelwin": 4, "gdal-tap": 0,
    "bundle-adjust-prefix": 1, "ref-map": 1, "ot": 1, "nearest-neighbor": 0, "model-occlusion": 0, "mo": 1,
    "no-geoheader-info": 0, "query-pixel": 2, "parse-options": 0,
} | GDAL_WRITE

DEM_MOSAIC = {
    "dem-list,l": 1, "output-prefix,o": 1, "tile-size": 1, "tile-index": 1, "tile-list": 1,
    "priority-blending-length": 1, "no-border-blend": 0, "tr": 1, "t_srs": 1, "t_projwin": 4, "gdal-tap": 0,
    "tap": 0, "first": 0, "last": 0, "min": 0, "max": 0, "mean": 0, "stddev": 0, "median": 0, "nmad": 0,
    "count": 0, "weight-list": 1, "invert-weights": 0, "min-weight": 1, "hole-fill-length": 1,
    "fill-search-radius": 1, "fill-power": 1, "fill-percent": 1, "fill-num-passes": 1, "erode-length": 1,
    "block-max": 0, "georef-tile-size": 1, "output-nodata-value": 1, "ot": 1, "weights-blur-sigma": 1,
    "weights-exponent": 1, "use-centerline-weights": 0, "dem-blur-sigma": 1, "nodata-threshold": 1,
    "propagate-nodata": 0, "extra-crop-length": 1, "block-size": 1, "save-dem-weight": 1, "force-projwin": 0,
    "save-index-map": 0, "dem-list-file": 1,
    "threads": 1, "tif-tile-size": 2, "cache-size-mb": 1, "no-bigtiff": 0, "tif-compress": 1, "version,v": 0,
    "help,h": 0,
}


BUNDLE_ADJUST = dict(item.rsplit(":", 1) for item in """
output-prefix,o:1 session-type,t:1 image-list:1 camera-list:1 datum:1 semi-major-axis:1 semi-minor-axis:1
csv-format:1 csv-srs:1 ip-detect-method:1 ip-per-tile:1 ip-per-image:1 ip-num-ransac-iterations:1
ip-inlier-factor:1 ip-uniqueness-threshold:1 epipolar-threshold:1 ip-triangulation-max-error:1 ip-nodata-radius:1
nodata-value:1 individually-normalize:0 ip-match-radius:1 flann-method:1 save-vwip:0 min-matches:1
max-pairwise-matches:1 matches-per-tile:1 matches-per-tile-params:2 overlap-limit:1 overlap-list:1
auto-overlap-params:1 auto-overlap-buffer:1 match-first-to-last:0 position-filter-dist:1 enable-rough-homography:0
skip-rough-homography:0 enable-tri-ip-filter:0 disable-tri-ip-filter:0 no-datum:0 force-reuse-match-files:0
skip-matching:0 matches-as-txt:0 match-files-prefix:1 clean-match-files-prefix:1 isis-cnet:1 nvm:1
output-cnet-type:1 no-poses-from-nvm:0 save-cnet-as-gcp:0 cost-function:1 robust-threshold:1 num-iterations:1
parameter-tolerance:1 num-passes:1 num-random-passes:1 save-intermediate-cameras:0 remove-outliers-params:1
elevation-limit:2 lon-lat-limit:4 max-gcp-reproj-err:1 gcp-robust-threshold:1 min-triangulation-angle:1
max-triangulation-angle:1 forced-triangulation-distance:1 proj-win:4 proj-str:1 tri-weight:1 tri-robust-threshold:1
camera-position-uncertainty:1 camera-position-uncertainty-power:1 orbital-group-list:1 camera-position-weight:1
camera-position-robust-threshold:1 rotation-weight:1 camera-weight:1 heights-from-dem:1 heights-from-dem-list:1
heights-from-dem-uncertainty:1 heights-from-dem-robust-threshold:1 weight-image:1 reference-terrain:1
reference-terrain-weight:1 max-num-reference-points:1 disparity-list:1 max-disp-error:1 fix-gcp-xyz:0
use-lon-lat-height-gcp-error:0 solve-intrinsics:0 intrinsics-to-float:1 intrinsics-to-share:1 intrinsics-limits:1
min-distortion:1 fixed-distortion-indices:1 inline-adjustments:0 input-adjustments-prefix:1 initial-transform:1
apply-initial-transform-only:0 fixed-camera-indices:1 fixed-image-list:1 camera-positions:1 init-camera-using-gcp:0
transform-cameras-with-shared-gcp:0 transform-cameras-using-gcp:0 disable-pinhole-gcp-init:0
update-isis-cubes-with-csm-state:0 save-adjusted-rpc:0 mapprojected-data:1 mapprojected-data-list:1 mapproj-dem:1
accept-provided-mapproj-dem:0 propagate-errors:0 horizontal-stddev:1 bathy-plane:1 bathy-plane-list:1
bathy-mask-list:1 refraction-index:1 approximate-pinhole-intrinsics:0 ip-side-filter-percent:1 normalize-ip-tiles:0
num-obalog-scales:1 max-iterations:1 overlap-exponent:1 csv-proj4:1 num-parallel-jobs:1 job-id:1
stop-after-statistics:0 stop-after-matching:0 calc-normalization-bounds:0 calc-ip:0 ip-debug-images:0
query-num-image-pairs:0
""".split())
BUNDLE_ADJUST = {name: int(n) for name, n in BUNDLE_ADJUST.items()}

class ArgumentErr(Exception):
    """vw::ArgumentErr: printed by ASP_STANDARD_CATCHES as ``ERROR: ...`` on stdout, exit 1."""


def fail(message: str) -> None:
    """What ``ASP_STANDARD_CATCHES`` does with an ``ArgumentErr`` (src/asp/Core/Macros.h:26-28)."""
    print(f"\n\nERROR: {message}\n", flush=True)
    sys.exit(1)


def parse(prog: str, argv: list[str], table: dict[str, int], positional: list[str] | None,
          usage: str) -> tuple[dict[str, list[str]], list[str]]:
    """Parse ``argv`` like ``check_command_line``; returns (option -> its tokens, positionals).

    ``positional`` names the positional slots (``None``: any number, stereo's
    ``input-files``). Options are keyed by their long name. A parse error exits
    as the real program does (``fail``).
    """
    longs, shorts = {}, {}
    for spec, n in table.items():
        name, _, short = spec.partition(",")
        longs[name] = n
        if short:
            shorts[short] = name
    header = f"Usage: {prog} {usage}\n\n  [ASP {ASP_VERSION}]\n"

    def error(what: str) -> None:
        fail(f"Error parsing input:\n{what}\n{header}")

    values: dict[str, list[str]] = {}
    files: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token.startswith("--") and len(token) > 2:
            key, eq, inline = token[2:].partition("=")
            if key not in longs:
                # unix_style includes allow_guessing: an unambiguous abbreviation is accepted
                matches = sorted(n for n in longs if n.startswith(key))
                if not matches:
                    error(f"unrecognised option '--{key}'")
                if len(matches) > 1:
                    error(f"option '--{key}' is ambiguous and matches " + ", ".join(f"'--{m}'" for m in matches))
                key = matches[0]
            tokens = [inline] if eq else []
        elif token.startswith("-") and len(token) > 1 and not _number(token):
            short, rest = token[1], token[2:]
            if short not in shorts:
                error(f"unrecognised option '-{short}'")
            key = shorts[short]
            tokens = [rest] if rest else []
        else:
            files.append(token)
            continue
        need = longs[key]
        if need == 0:
            values[key] = tokens
            continue
        while len(tokens) < need and i < len(argv) and (not argv[i].startswith("-") or _number(argv[i])):
            tokens.append(argv[i])
            i += 1
        if len(tokens) < need:
            error(f"the required argument for option '--{key}' is missing")
        if key in values:
            error(f"option '--{key}' cannot be specified more than once")
        values[key] = tokens
    if positional is not None and len(files) > len(positional):
        error("too many positional options have been specified on the command line")
    if "help" in values:
        print(header)
        sys.exit(0)
    if "version" in values:  # AspProgramOptions.cc:118-137
        print(f"NASA Ames Stereo Pipeline {ASP_VERSION} (ctxdask test stand-in, NOT the real program)\n")
        sys.exit(0)
    return values, files


def _number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
