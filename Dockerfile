# syntax=docker/dockerfile:1
# ContrastGeo images. The worker's (`contrastgeo worker`, the default command) carry no
# torch: the core dependencies and one onnxruntime build. The refit job's image adds the
# `train` extra (torch, transformers, ...). Model artifacts are not baked in: the model
# store is a mounted volume.
#
#   docker build -t contrastgeo:cpu .                        # worker, CPU: int8 ONNX
#   docker build -t contrastgeo:gpu --target runtime-gpu .   # worker, CUDA: fp32 ONNX
#   docker build -t contrastgeo:cpu-refit --target refit .   # refit CronJob (CPU torch)
#
# Health: the worker serves /healthz (liveness) and /readyz (readiness) on
# CONTRASTGEO_WEB_PORT (6066); Kubernetes probes use them (helm/contrastgeo), and the CPU
# image's HEALTHCHECK does too.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ARG TORCH_VERSION=2.13.0

# ---------------------------------------------------------------- the package's source
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY contrastgeo /src/contrastgeo
COPY model /src/model
COPY trainer /src/trainer
COPY stream /src/stream
COPY schemas /src/schemas
COPY refit /src/refit
COPY benchmarks /src/benchmarks

# ---------------------------------------------------------------- GPU build
FROM ${CUDA_IMAGE} AS build-gpu
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY --from=source /src ./
# the worker's dependencies with onnxruntime-gpu (no torch); ranged in pyproject.toml
# hadolint ignore=DL3013
RUN pip install ".[gpu]"

# ---------------------------------------------------------------- GPU runtime
FROM ${CUDA_IMAGE} AS runtime-gpu
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/contrastgeo contrastgeo
COPY --from=build-gpu /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    CONTRASTGEO_DEVICE=cuda \
    CONTRASTGEO_MODEL_STORE=/models \
    CONTRASTGEO_DATA_DIR=/tmp/contrastgeo \
    CONTRASTGEO_WEB_HOST=0.0.0.0
WORKDIR /home/contrastgeo
USER 10001
EXPOSE 6066
ENTRYPOINT ["contrastgeo"]
CMD ["worker"]

# ---------------------------------------------------------------- CPU build (worker)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY --from=source /src ./
# the worker's dependencies (no torch); ranged in pyproject.toml
# hadolint ignore=DL3013
RUN pip install ".[cpu]"

# ---------------------------------------------------------------- CPU build (refit job)
FROM build AS build-refit
ARG TORCH_VERSION
# torch first, from PyTorch's CPU index: a bare requirement would pull the CUDA build
# hadolint ignore=DL3013
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu \
    && pip install ".[cpu,train]"

# ---------------------------------------------------------------- refit job (CPU)
FROM ${PYTHON_IMAGE} AS refit
RUN useradd --system --uid 10001 --create-home --home-dir /home/contrastgeo contrastgeo
COPY --from=build-refit /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    CONTRASTGEO_DEVICE=cpu \
    CONTRASTGEO_MODEL_STORE=/models
WORKDIR /home/contrastgeo
USER 10001
ENTRYPOINT ["contrastgeo"]
CMD ["refit"]

# ---------------------------------------------------------------- CPU runtime (default, last)
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --create-home --home-dir /home/contrastgeo contrastgeo
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    CONTRASTGEO_DEVICE=cpu \
    CONTRASTGEO_MODEL_STORE=/models \
    CONTRASTGEO_DATA_DIR=/tmp/contrastgeo \
    CONTRASTGEO_WEB_HOST=0.0.0.0
WORKDIR /home/contrastgeo
USER 10001
EXPOSE 6066
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('CONTRASTGEO_WEB_PORT', '6066') + '/healthz', timeout=4)"]
ENTRYPOINT ["contrastgeo"]
CMD ["worker"]
