# A read-only FUSE filesystem with one file, /vmcore, that reads as BACKING except that every read
# overlapping the byte range [LO, HI) fails with EIO: a disk with bad sectors under a vmcore, for
# test/dumpfile/unreadable-pages.test.ts. Runs in the foreground until unmounted.
# Usage: /usr/bin/python3 eio-fs.py BACKING MOUNTPOINT LO HI   (Debian: python3-fusepy, /dev/fuse)
import errno
import os
import stat
import sys

import fusepy


class BadSectors(fusepy.Operations):
    def __init__(self, backing, lo, hi):
        self.fd = os.open(backing, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.lo, self.hi = lo, hi

    def getattr(self, path, fh=None):
        if path == '/':
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2)
        if path == '/vmcore':
            return dict(st_mode=stat.S_IFREG | 0o444, st_nlink=1, st_size=self.size)
        raise fusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return ['.', '..', 'vmcore']

    def open(self, path, flags):
        return 0

    def read(self, path, size, offset, fh):
        if offset < self.hi and offset + size > self.lo:
            raise fusepy.FuseOSError(errno.EIO)
        return os.pread(self.fd, size, offset)


if __name__ == '__main__':
    backing, mountpoint, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # direct_io: every read reaches read() above, none is served from the page cache.
    fusepy.FUSE(BadSectors(backing, lo, hi), mountpoint, foreground=True, ro=True, direct_io=True)
