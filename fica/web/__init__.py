"""The live viewer's browser side (Spark + three.js, MediaPipe face mesh) and the pages that carry it.

``fica/web/*.js`` are the viewer's own modules; ``vendor/`` holds the built libraries (re-fetched by
``refresh_vendor.sh``); ``page.py`` embeds them into the app and into the standalone ``avatar_viewer.html``.
"""
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
