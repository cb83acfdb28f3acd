# syntax=docker/dockerfile:1
# The vehicle image for NVIDIA Jetson (Orin, JetPack 6): L4T with CUDA and TensorRT 10 (Python bindings from
# python3-libnvinfer, CUDA runtime bindings from cuda-python), ROS 2,
# onnxruntime as the fallback backend, the roadloop workspace built by colcon.
#
# JetPack 6 is Ubuntu 22.04, for which ROS 2's binary distribution is Humble (Jazzy targets
# 24.04): this image installs Humble, and roadloop reads and writes its messages with the
# Humble typestore. TensorRT builds the engine from the bundle's ONNX on the device itself
# (`roadloop engine build BUNDLE`), cached per (onnx sha256, TensorRT version, GPU, precision).
#
# Build on a Jetson (or with an arm64 builder) from the repository root:
#   docker build -f docker/vehicle-jetson.Dockerfile -t roadloop/vehicle-jetson .
# Run:
#   docker run --runtime nvidia --net=host -v /data/roadloop:/data/roadloop roadloop/vehicle-jetson
ARG L4T_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0
FROM ${L4T_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV ROS_DISTRO=humble \
    DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8

# ROS 2 from packages.ros.org, signed by the ROS key.
# Distribution packages track the base image's snapshot (ROS and L4T publish moving versions):
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg lsb-release \
    && curl -fsSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
        -o /usr/share/keyrings/ros-archive-keyring.gpg \
    && echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/ros-archive-keyring.gpg] http://packages.ros.org/ros2/ubuntu $(lsb_release -cs) main" \
        > /etc/apt/sources.list.d/ros2.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        "ros-${ROS_DISTRO}-ros-base" \
        "ros-${ROS_DISTRO}-ackermann-msgs" \
        "ros-${ROS_DISTRO}-diagnostic-msgs" \
        "ros-${ROS_DISTRO}-rosbag2-storage-mcap" \
        python3-pip \
        python3-colcon-common-extensions \
        python3-numpy \
        python3-yaml \
        python3-matplotlib \
        python3-libnvinfer \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY docker/requirements-jetson.txt /tmp/requirements-jetson.txt
# Ubuntu 22.04's numpy (1.21.5) and PyYAML stay: pip is constrained to the installed versions. onnxruntime's
# metadata asks for numpy >= 1.21.6 although its wheels run on 1.21 (built for the numpy 1.x C API), so it goes in
# without dependencies after the rest; its own dependencies are pinned in requirements-jetson.txt.
RUN python3 -c 'import numpy, yaml; print(f"numpy=={numpy.__version__}\nPyYAML=={yaml.__version__}")' \
        > /tmp/distro-constraints.txt \
    && grep -v '^onnxruntime==' /tmp/requirements-jetson.txt > /tmp/requirements-rest.txt \
    && pip3 install -c /tmp/distro-constraints.txt -r /tmp/requirements-rest.txt \
    && pip3 install --no-deps "$(grep '^onnxruntime==' /tmp/requirements-jetson.txt)"

COPY colcon.meta ./
COPY src/roadloop_core src/roadloop_core
COPY src/roadloop_vehicle src/roadloop_vehicle
RUN . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && colcon build --merge-install --packages-select roadloop_core roadloop_vehicle \
    && rm -rf build log

COPY launch install/share/roadloop_vehicle/launch
COPY config install/share/roadloop_vehicle/config
COPY --chmod=755 docker/ros-entrypoint.sh /ros-entrypoint.sh
ENV ROADLOOP_CONFIG_DIR=/ws/install/share/roadloop_vehicle/config \
    ROADLOOP_ROS_DISTRO=humble

ENTRYPOINT ["/ros-entrypoint.sh"]
CMD ["ros2", "launch", "roadloop_vehicle", "vehicle.launch.py"]
