#!/usr/bin/env python3
"""ctxdask test stand-in for cam2map4stereo.py: NOT the real ISIS/ASP program (see _asp_mono.py)."""
# follows NeoGeographyToolkit/StereoPipeline src/asp/Tools/cam2map4stereo.py at 55bf46022 (citations in _asp_mono.py)
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from _asp_mono import main  # noqa: E402

main("cam2map4stereo.py")
