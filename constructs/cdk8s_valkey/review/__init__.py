"""Review a change of rendered manifests (``dist/``): for every added, removed or changed
object, a verdict (safe, restarts, rejected, data at risk) and its reasons, as Markdown.

``python -m cdk8s_valkey review OLD NEW``, ``... review --git REV [DIST]`` or, for a pull request,
``... review --base main [DIST]`` (``make review``);
from Python, ``review(old_objects, new_objects)`` returns a :class:`Report`.
"""

from ._load import ManifestError, NoRevisionError, load_git, load_path, merge_base, parse
from ._model import Finding, ObjectKey, ObjectReview, Report, Verdict
from ._review import review
from .guard import ClaimGuardError, guard_claims, guarded_synth

__all__ = [
    "ClaimGuardError",
    "Finding",
    "ManifestError",
    "NoRevisionError",
    "ObjectKey",
    "ObjectReview",
    "Report",
    "Verdict",
    "guard_claims",
    "guarded_synth",
    "load_git",
    "load_path",
    "merge_base",
    "parse",
    "review",
]
