package server

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupPages asks the kernel to page out this process's
// read-only mappings of its own executable (code and constant data). The
// pgherd-dcs binary is large and its package initialisation touches much of
// it once; an idle member needs little of that again. The pages are clean
// page cache, shared with every other pgherd process: the kernel would
// reclaim them under memory pressure anyway, and brings back those that
// are used, from the page cache, on their next access. Writable mappings
// are left alone.
//
// The mappings are also marked MADV_RANDOM: an idle member touches a page
// here and there (a GC stack scan reads the pclntab entries of the
// functions on its goroutines' stacks), and the kernel's default read-around
// would map up to 128 KiB of neighbours with each such page, none of which
// the member reads. With it, a page comes back only when it is read.
func releaseStartupPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The raw call takes the range as numbers: no Go pointer to
		// memory Go does not manage.
		for _, advice := range []uintptr{unix.MADV_RANDOM, unix.MADV_PAGEOUT} {
			_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), advice)
		}
	}
}
