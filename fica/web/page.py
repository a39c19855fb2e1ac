"""Pages that carry the live viewer: the script the app runs in its ``live-viewer`` panel, and the standalone
``avatar_viewer.html`` (one file, rig and libraries inside, opens offline from ``file://``).

Both run ``loader.js`` (modules linked through blob URLs, no import map, no bundler) and ``viewer.js``'s
``mountViewer``; the presets travel as JSON sampled from ``fica.drive.presets`` so the page plays what the
videos show, and the expression names come from ``fica.drive.expression.ARKIT_NAMES`` (the viewer has no list of
its own).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

from fica.drive.expression import ARKIT_NAMES
from fica.drive.presets import PRESETS, preset_clip
from fica.io._atomic import atomic_path
from fica.web import WEB_DIR

PRESET_FPS = 30
PRESET_SECONDS = 4.0
# What the loader reads (paths under fica/web/); the face mesh's files are fetched by face_mesh.js itself.
MODULE_FILES = ("vendor/three/three.core.min.js", "vendor/three/three.module.min.js", "vendor/three/Pass.js",
                "vendor/three/OrbitControls.js", "vendor/spark/spark.module.min.js", "rig_modifier.js", "webcam.js",
                "gpu_pacer.js", "viewer.js")
LANDMARK_MODEL = "landmark_regression.json"
FACE_MESH_DIR = "vendor/face_mesh/"


def preset_tracks(fps: float = PRESET_FPS, seconds: float = PRESET_SECONDS) -> dict:
    """Every preset as ``{name: {"fps", "names": [weights it moves], "weights": [[...] per frame],
    "rotation": [[yaw, pitch, roll] per frame]}}``, rounded to 3 decimals."""
    tracks = {}
    for name in PRESETS:
        clip = preset_clip(name, fps=fps, seconds=seconds)
        used = sorted({n for frame in clip.frames for n in frame.as_dict()})
        tracks[name] = {"fps": fps, "names": used,
                        "weights": [[round(frame[n], 3) for n in used] for frame in clip.frames],
                        "rotation": [[round(float(a), 2) for a in frame.rotation_deg] for frame in clip.frames]}
    return tracks


def _json_for_script(value) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def app_viewer_js(web_url: str, root_selector: str) -> str:
    """Body of the app's ``gr.HTML(js_on_load=...)``: mounts the viewer in the component's element matching
    ``root_selector``, with the files served under ``web_url`` (ending in ``/``), webcam driving included. The rig
    arrives later through ``window.ficaLive.loadRig(url)`` (or ``window.ficaPendingRig`` if it came first)."""
    loader = (WEB_DIR / "loader.js").read_text()
    return (f"{loader}\n"
            f"const ficaWeb = {json.dumps(web_url)};\n"
            "window.ficaImportViewer((path) => fetch(ficaWeb + path).then((r) => r.text())).then((viewer) => {\n"
            f"  viewer.mountViewer(element.querySelector({json.dumps(root_selector)}), {{expressions: "
            f"{json.dumps(list(ARKIT_NAMES))}, presets: {_json_for_script(preset_tracks())}, "
            f"faceMeshBase: ficaWeb + {json.dumps(FACE_MESH_DIR)}, landmarkModel: ficaWeb + "
            f"{json.dumps(LANDMARK_MODEL)}}});\n"
            "  if (window.ficaPendingRig) window.ficaLive.loadRig(window.ficaPendingRig);\n"
            "});\n")


def standalone_html(rig_zip: bytes, title: str = "FiCA avatar") -> str:
    """One self-contained page: the viewer, its libraries and ``rig_zip`` (the bytes of an avatar_rig.zip)."""
    sources = {path: (WEB_DIR / path).read_text() for path in MODULE_FILES}
    loader = (WEB_DIR / "loader.js").read_text()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body {{ margin: 0; padding: 12px; background: #15161a; color: #ddd; font: 14px system-ui, sans-serif; }}
h1 {{ font-size: 16px; font-weight: 600; margin: 0 0 8px; }}</style></head>
<body><h1>{title}: drag to orbit, scroll to zoom; sliders, presets and head angles drive it</h1>
<div id="fica-root"></div>
<script>{loader}</script>
<script>
const ficaSources = {_json_for_script(sources)};
const ficaRig = "{base64.b64encode(rig_zip).decode("ascii")}";
const ficaPresets = {_json_for_script(preset_tracks())};
const ficaExpressions = {json.dumps(list(ARKIT_NAMES))};
window.ficaImportViewer((path) => Promise.resolve(ficaSources[path])).then((viewer) => {{
  const api = viewer.mountViewer(document.getElementById("fica-root"), {{expressions: ficaExpressions,
    presets: ficaPresets}});
  const bytes = Uint8Array.from(atob(ficaRig), (c) => c.charCodeAt(0));
  return api.loadRig(bytes.buffer);
}}).catch((err) => {{ document.body.append("The viewer could not start: " + err.message); }});
</script></body></html>
"""


def write_standalone_html(rig_path: str | Path, out_path: str | Path) -> Path:
    """Write ``avatar_viewer.html`` for the rig at ``rig_path``. Atomic."""
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text(standalone_html(Path(rig_path).read_bytes()), encoding="utf-8")
    return out_path
