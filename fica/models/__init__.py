"""The paper's networks as diffusers ``ModelMixin`` + ``ConfigMixin`` modules (safetensors save/load).

dense_vit: Sapiens-style dense predictor; uv_dit: latent flow-matching DiT for UV completion;
uv_refiner: UNet predicting residual corrections; codec_prior: Gaussian Codec Avatar decoder;
inputs: letterboxing images and resampling partial maps to a network's input size.
"""

# diffusers models load without `accelerate` here; saying so up front silences its warning on every load:
# ``Model.from_pretrained(folder, **QUIET_LOAD)``.
QUIET_LOAD = {"low_cpu_mem_usage": False}
