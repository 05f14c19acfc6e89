"""Imported first by the package: when it runs as ``python -m cdk8s_valkey`` (the review tool),
Node's 11-line end-of-life banner would be printed over the report, since the package's imports
start Node (jsii). Only for the tool: an app that imports the library keeps Node's warnings."""

import os
import sys

_argv = sys.orig_argv
if "-m" in _argv and _argv[_argv.index("-m") + 1 : _argv.index("-m") + 2] == ["cdk8s_valkey"]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
