# syntax=docker/dockerfile:1
# The cluster trainer image: PyTorch (CUDA, NCCL) plus the roadloop cluster packages. It runs
# `roadloop data build`, `roadloop train` (torchrun inside: standalone on one node, c10d
# rendezvous across nodes, see docker/k8s/) and `roadloop export`, and the closed-loop gate
# (`roadloop sim eval`, headless highway-env).
#
# The base tag carries torch 2.13.0, the workspace's pin; torch is never installed by pip here.
#   docker build -f docker/trainer.Dockerfile -t roadloop/trainer .
ARG PYTORCH_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${PYTORCH_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SDL_VIDEODRIVER=offscreen \
    PYGAME_HIDE_SUPPORT_PROMPT=1

WORKDIR /opt/roadloop
COPY docker/requirements-trainer.txt /tmp/requirements-trainer.txt
RUN pip install -r /tmp/requirements-trainer.txt

# --no-deps: every dependency is pinned above, and torch must stay the base image's.
COPY src src
COPY config config
RUN pip install --no-deps \
        ./src/roadloop_core ./src/roadloop_hub ./src/roadloop_vehicle ./src/roadloop_sim ./src/roadloop_cluster \
    && useradd --create-home --uid 1000 roadloop \
    && mkdir -p /data /runs \
    && chown roadloop:roadloop /data /runs
ENV ROADLOOP_CONFIG_DIR=/opt/roadloop/config

USER 1000:1000
WORKDIR /runs
ENTRYPOINT ["roadloop"]
CMD ["--help"]
