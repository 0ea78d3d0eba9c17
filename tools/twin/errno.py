# The ESP32 port's errno module. ports/esp32/mpconfigport.h sets
# MICROPY_USE_INTERNAL_ERRNO (0) (v1.24.1:69, v1.27.0:68, v1.28.0:71): the numbers
# are newlib's sys/errno.h, not Linux's. The names are py/moderrno.c's list.
EPERM = 1
ENOENT = 2
EIO = 5
EBADF = 9
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EEXIST = 17
ENODEV = 19
EISDIR = 21
EINVAL = 22
EOPNOTSUPP = 95
ECONNRESET = 104
ENOBUFS = 105
ECONNREFUSED = 111
EADDRINUSE = 112
ECONNABORTED = 113
ETIMEDOUT = 116
EHOSTUNREACH = 118
EINPROGRESS = 119
EALREADY = 120
ENOTCONN = 128

errorcode = {v: k for k, v in globals().items() if k[:1] == "E" and isinstance(v, int)}
