# syntax=docker/dockerfile:1
# The vehicle image: ROS 2 Jazzy, onnxruntime and the roadloop workspace built by colcon.
# It holds roadloop_core and roadloop_vehicle only (no torch); its default command is the
# onboard stack: `ros2 launch roadloop_vehicle vehicle.launch.py`.
#
# Build from the repository root:
#   docker build -f docker/vehicle.Dockerfile -t roadloop/vehicle .
# Run on the car (host network for DDS discovery, models and recordings on the host):
#   docker run --net=host -v /data/roadloop:/data/roadloop roadloop/vehicle
ARG ROS_DISTRO=jazzy
FROM ros:${ROS_DISTRO}-ros-base

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# rosbag2's mcap storage plugin: the launch file records with `ros2 bag record -s mcap`.
# Distribution packages track the base image's snapshot (ROS and L4T publish moving versions):
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3-pip \
        python3-colcon-common-extensions \
        "ros-${ROS_DISTRO}-ackermann-msgs" \
        "ros-${ROS_DISTRO}-rosbag2-storage-mcap" \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY docker/requirements-vehicle.txt /tmp/requirements-vehicle.txt
RUN pip3 install --ignore-installed -r /tmp/requirements-vehicle.txt

COPY colcon.meta ./
COPY src/roadloop_core src/roadloop_core
COPY src/roadloop_vehicle src/roadloop_vehicle
RUN . "/opt/ros/${ROS_DISTRO}/setup.bash" \
    && colcon build --merge-install --packages-select roadloop_core roadloop_vehicle \
    && rm -rf build log

# `ros2 launch PKG FILE` searches the package's share folder, so the launch files and the
# parameter files go there; roadloop_core.config reads config/ from ROADLOOP_CONFIG_DIR.
COPY launch install/share/roadloop_vehicle/launch
COPY config install/share/roadloop_vehicle/config
COPY --chmod=755 docker/ros-entrypoint.sh /ros-entrypoint.sh
ENV ROADLOOP_CONFIG_DIR=/ws/install/share/roadloop_vehicle/config

ENTRYPOINT ["/ros-entrypoint.sh"]
CMD ["ros2", "launch", "roadloop_vehicle", "vehicle.launch.py"]
