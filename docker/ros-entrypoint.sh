#!/bin/bash
# Entry of the ROS 2 vehicle images: source the ROS underlay and the roadloop overlay, then run the command.
set -e
# shellcheck disable=SC1090
source "/opt/ros/${ROS_DISTRO}/setup.bash"
# shellcheck disable=SC1091
source /ws/install/setup.bash
exec "$@"
