//go:build unix

package hub

import "golang.org/x/sys/unix"

// checkDiskSpace warns (like huggingface_hub) when dir's file system has
// less free space than need bytes; the download still runs and a full disk
// is reported when a write fails.
func checkDiskSpace(c *Client, dir string, need int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return
	}
	free := int64(uint64(st.Bavail) * uint64(st.Bsize))
	if free >= 0 && free < need {
		c.warnf("not enough free disk space in %s: %s needed, %s free", dir, FormatSize(need), FormatSize(free))
	}
}
