"""The paper's networks as diffusers ``ModelMixin`` + ``ConfigMixin`` modules (safetensors save/load).

dense_vit: Sapiens-style dense predictor; uv_dit: latent flow-matching DiT for UV completion;
uv_refiner: UNet predicting residual corrections; codec_prior: Gaussian Codec Avatar decoder.
"""
