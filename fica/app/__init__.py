"""What the app needs from the library, without Gradio: one call from a portrait to every artifact on disk.

- ``generate``: orchestration (``generate_steps`` / ``generate``, options and result);
- ``pipelines``: the pipelines built once per process and shared by requests;
- ``storage``: the private per-request folders and their retention;
- ``viewer``: framing the Gaussians for Gradio's Model3D splat viewer.

Scripts and tests call the same functions as the UI.
"""
