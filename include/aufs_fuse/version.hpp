#pragma once
#define AUFS_FUSE_VERSION "0.1.0"
