// flotilla-powerloss: an LD_PRELOAD shim that keeps, beside one data
// directory, the state that would survive a power loss, so a test can
// SIGKILL the process, rebuild the directory from that state and start it
// again "after the power came back". See docs/testing.md, "Power loss".
//
//   LD_PRELOAD=flotilla-powerloss.so POWERLOSS_DIR=/abs/data POWERLOSS_SHADOW=/abs/shadow
//     [POWERLOSS_KILL_AT=kv.db-wal:2:after] node ...
//
// The model (what survives a power loss), per file directly in POWERLOSS_DIR:
//   * file contents and size: as of the last fsync/fdatasync of that file
//     (any descriptor of the same inode); every write or truncation since is
//     lost, all of it. A newly created file's durable content is empty until
//     its first fsync.
//   * names (create, rename over, unlink): as of the last fsync of the
//     directory itself. A file that was fsynced but whose creation or rename
//     was not followed by a directory fsync is not there (or still has its
//     old name and old inode).
//   * *-shm files are never durable (SQLite rebuilds the shared-memory index
//     from the WAL); subdirectories are not modelled.
// That is no weaker than ext4 data=ordered: ext4 keeps everything the model
// keeps (fsync flushes the inode's data and size; a directory fsync commits
// its entries) and may keep more (unsynced data written back early, names
// committed by the journal within seconds). A program correct under the
// model is correct on ext4; the converse need not hold. The model does not
// tear: a write not yet synced is lost whole, never in part (except when a
// SIGKILL lands inside the shim's own copy at fsync time, which leaves a
// prefix of that fsync's writes: an fsync that never returned).
//
// The shadow directory holds:
//   names         one line per durable name: "<name>\t<content id>\n"
//                 (replaced atomically by rename at each directory fsync)
//   inodes/<id>   the durable content of one inode
//   events        one line per durable event: "<seq> <kind> <name>", kind one of
//                 init, fsync, dirsync, untracked (a file the shim did not see
//                 created), kill-before / kill-after (POWERLOSS_KILL_AT fired)
// At start the shim takes everything in POWERLOSS_DIR as durable (the test
// restored it from the shadow, or it is new) and rebuilds the shadow from it.
// It then removes its variables from the environment, so child processes run
// without it.
//
// POWERLOSS_KILL_AT=<name prefix>:<n>:<before|after> makes the process
// SIGKILL itself at the n-th fsync of a file whose name starts with the
// prefix (a prefix ending in '$' must match the whole name): before the
// shim records it as durable (the fsync is lost) or right after. The test uses it to crash exactly between two syncs.
// POWERLOSS_KILL_FILE=<path> arms the same kill while the process runs:
// at each fsync the shim looks at the file (one stat), and when it was
// replaced it reads a new "<prefix>:<n>:<when>" from it, counting n from
// then on (an empty or missing file disarms).
//
// Interposed: open, open64, openat, openat64, creat, creat64, close, dup,
// dup2, dup3, write, pwrite, pwrite64, writev, pwritev, pwritev64, pwritev2,
// pwritev64v2, ftruncate, ftruncate64, truncate, truncate64, fallocate,
// fallocate64, posix_fallocate, posix_fallocate64, sendfile, sendfile64,
// copy_file_range, mmap, mmap64 (a writable shared mapping makes every fsync
// copy the whole file), fsync, fdatasync. Not modelled (neither SQLite nor
// Node's fs use them here): sync(), syncfs(), msync(), sync_file_range(),
// fcntl(F_DUPFD), io_uring, raw syscall(). Renames and unlinks need no
// interposition: the durable names are read off the directory at its fsync.
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define FD_MAX 65536
#define NAME_MAX_LEN 255
#define NO_TRUNCATION UINT64_MAX

typedef struct { uint64_t lo, hi; } range_t;

/* inode_t is one tracked file: where its durable content lives and what changed since its last fsync. */
typedef struct inode {
  dev_t dev;
  ino_t ino;
  uint64_t id;
  char name[NAME_MAX_LEN + 1];
  range_t *dirty;
  size_t ndirty, cap;
  uint64_t min_size; /* smallest size since the last fsync (NO_TRUNCATION: never truncated) */
  int all_dirty;     /* copy the whole file at the next fsync */
  int mapped;        /* a writable shared mapping exists: every fsync copies the whole file */
  int open_fds;
  int named;         /* seen in the directory at the last directory fsync */
  struct inode *next;
} inode_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int enabled;
static char dir[PATH_MAX];
static size_t dir_len;
static char shadow[PATH_MAX];
static inode_t *inodes;
static inode_t *fd_inode[FD_MAX];
/* fd_kind: 0 untracked, 1 a tracked file, 2 the data directory itself. Read without the lock on the fast path. */
static unsigned char fd_kind[FD_MAX];
static uint64_t next_id = 1;
static uint64_t seq;
static int events_fd = -1;
static char kill_prefix[NAME_MAX_LEN + 1];
static long kill_n;
static int kill_before;
static long kill_count;
static char kill_file[PATH_MAX];
static struct stat kill_file_seen;

/* ------------------------------------------------------------ real calls */

/* resolve returns the next definition of a symbol (libc's), looked up once. */
static void *resolve(void **slot, const char *name) {
  void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (!p) {
    p = dlsym(RTLD_NEXT, name);
    __atomic_store_n(slot, p, __ATOMIC_RELEASE);
  }
  return p;
}
#define REAL(name) ((__typeof__(real_##name))resolve((void **)&real_##name, #name))
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*real_pwritev64v2)(int, const struct iovec *, int, off64_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_truncate)(const char *, off_t);
static int (*real_truncate64)(const char *, off64_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_fallocate64)(int, int, off64_t, off64_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_posix_fallocate64)(int, off64_t, off64_t);
static ssize_t (*real_sendfile)(int, int, off_t *, size_t);
static ssize_t (*real_sendfile64)(int, int, off64_t *, size_t);
static ssize_t (*real_copy_file_range)(int, loff_t *, int, loff_t *, size_t, unsigned int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static void *(*real_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void die(const char *what) {
  char buf[PATH_MAX + 128];
  int n = snprintf(buf, sizeof buf, "flotilla-powerloss: %s: %s\n", what, strerror(errno));
  if (n > 0) REAL(write)(2, buf, (size_t)n);
  _exit(97);
}

/* ------------------------------------------------------------- helpers */

static void shadow_path(char *out, size_t len, const char *rel) { snprintf(out, len, "%s/%s", shadow, rel); }

static void content_path(char *out, size_t len, uint64_t id) { snprintf(out, len, "%s/inodes/%llu", shadow, (unsigned long long)id); }

static void event(const char *kind, const char *name) {
  char buf[NAME_MAX_LEN + 64];
  int n = snprintf(buf, sizeof buf, "%llu %s %s\n", (unsigned long long)++seq, kind, name);
  if (n > 0 && REAL(write)(events_fd, buf, (size_t)n) != n) die("writing the events file");
}

static int is_shm(const char *name) {
  size_t n = strlen(name);
  return n >= 4 && strcmp(name + n - 4, "-shm") == 0;
}

/* classify: 2 = the data directory, 1 = a file directly in it (not -shm), 0 = neither. base gets the file's name. */
static int classify(int dirfd, const char *path, char *base) {
  char abs[PATH_MAX];
  if (path == NULL) return 0;
  if (path[0] == '/') {
    snprintf(abs, sizeof abs, "%s", path);
  } else if (dirfd == AT_FDCWD) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) return 0;
    snprintf(abs, sizeof abs, "%s/%s", cwd, path);
  } else if (dirfd >= 0 && dirfd < FD_MAX && fd_kind[dirfd] == 2) {
    snprintf(abs, sizeof abs, "%s/%s", dir, path);
  } else {
    return 0;
  }
  size_t n = strlen(abs);
  while (n > 1 && abs[n - 1] == '/') abs[--n] = 0;
  while (n >= 2 && strcmp(abs + n - 2, "/.") == 0) abs[n -= 2] = 0;
  if (n == dir_len && memcmp(abs, dir, n) == 0) return 2;
  if (n <= dir_len + 1 || memcmp(abs, dir, dir_len) != 0 || abs[dir_len] != '/') return 0;
  const char *name = abs + dir_len + 1;
  if (strchr(name, '/') != NULL || is_shm(name) || strlen(name) > NAME_MAX_LEN) return 0;
  strcpy(base, name);
  return 1;
}

static inode_t *find_inode(dev_t dev, ino_t ino) {
  for (inode_t *i = inodes; i; i = i->next)
    if (i->dev == dev && i->ino == ino) return i;
  return NULL;
}

static inode_t *new_inode(dev_t dev, ino_t ino, const char *name) {
  inode_t *old = find_inode(dev, ino);
  if (old) old->dev = (dev_t)-1; /* a reused inode number: the old record no longer names a live file */
  inode_t *i = calloc(1, sizeof *i);
  if (!i) die("out of memory");
  i->dev = dev;
  i->ino = ino;
  i->id = next_id++;
  i->min_size = NO_TRUNCATION;
  snprintf(i->name, sizeof i->name, "%s", name);
  i->next = inodes;
  inodes = i;
  return i;
}

static void add_range(inode_t *i, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return;
  if (i->ndirty > 0 && i->dirty[i->ndirty - 1].hi == lo) { /* the common case: appending */
    i->dirty[i->ndirty - 1].hi = hi;
    return;
  }
  if (i->ndirty == i->cap) {
    if (i->cap >= (1u << 20)) { /* too many ranges to keep: copy the whole file at the next fsync */
      i->all_dirty = 1;
      i->ndirty = 0;
      return;
    }
    i->cap = i->cap ? i->cap * 2 : 64;
    i->dirty = realloc(i->dirty, i->cap * sizeof *i->dirty);
    if (!i->dirty) die("out of memory");
  }
  i->dirty[i->ndirty++] = (range_t){lo, hi};
}

static int cmp_range(const void *a, const void *b) {
  const range_t *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* copy_range copies [lo, hi) of the real file (rfd) into the shadow content (sfd). */
static void copy_range(int rfd, int sfd, uint64_t lo, uint64_t hi) {
  static char buf[1 << 16];
  while (lo < hi) {
    size_t want = hi - lo < sizeof buf ? (size_t)(hi - lo) : sizeof buf;
    ssize_t r = pread(rfd, buf, want, (off_t)lo);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("reading a file to copy it into the shadow");
    if (r == 0) return; /* the file shrank meanwhile */
    for (ssize_t done = 0; done < r;) {
      ssize_t w = REAL(pwrite)(sfd, buf + done, (size_t)(r - done), (off_t)(lo + (uint64_t)done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) die("writing the shadow");
      done += w;
    }
    lo += (uint64_t)r;
  }
}

/* sync_inode makes the inode's current content durable in the shadow (fd: any descriptor of it). */
static void sync_inode(inode_t *i, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) die("fstat at fsync");
  char path[PATH_MAX];
  content_path(path, sizeof path, i->id);
  int sfd = REAL(open)(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (sfd < 0) die("opening a shadow content file");
  int rfd = fd;
  if ((fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    rfd = REAL(open)(self, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) die("reopening a write-only file to read it");
  }
  uint64_t size = (uint64_t)st.st_size;
  if (i->min_size != NO_TRUNCATION && REAL(ftruncate)(sfd, (off_t)i->min_size) != 0) die("truncating the shadow");
  if (REAL(ftruncate)(sfd, (off_t)size) != 0) die("sizing the shadow");
  if (i->mapped || i->all_dirty) {
    copy_range(rfd, sfd, 0, size);
  } else {
    qsort(i->dirty, i->ndirty, sizeof *i->dirty, cmp_range);
    for (size_t k = 0; k < i->ndirty; k++) {
      uint64_t lo = i->dirty[k].lo, hi = i->dirty[k].hi;
      while (k + 1 < i->ndirty && i->dirty[k + 1].lo <= hi) {
        if (i->dirty[k + 1].hi > hi) hi = i->dirty[k + 1].hi;
        k++;
      }
      if (lo < size) copy_range(rfd, sfd, lo, hi < size ? hi : size);
    }
  }
  i->ndirty = 0;
  i->all_dirty = 0;
  i->min_size = NO_TRUNCATION;
  if (rfd != fd) REAL(close)(rfd);
  REAL(close)(sfd);
}

/* snapshot_file takes a file's current content as durable (at start, or an inode the shim never saw created). */
static inode_t *snapshot_file(const char *name, const struct stat *st) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  inode_t *i = new_inode(st->st_dev, st->st_ino, name);
  int fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("opening a file to snapshot it");
  i->all_dirty = 1;
  sync_inode(i, fd);
  REAL(close)(fd);
  return i;
}

/* commit_names makes the directory's current entries durable (a directory fsync), then drops unreachable content. */
static void commit_names(int initial) {
  char tmp[PATH_MAX], final[PATH_MAX];
  shadow_path(tmp, sizeof tmp, "names.tmp");
  shadow_path(final, sizeof final, "names");
  int out = REAL(open)(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) die("opening the shadow names file");
  DIR *d = opendir(dir);
  if (!d) die("listing the data directory");
  for (inode_t *i = inodes; i; i = i->next) i->named = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || is_shm(e->d_name)) continue;
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    inode_t *i = find_inode(st.st_dev, st.st_ino);
    if (!i) {
      i = snapshot_file(e->d_name, &st);
      if (!initial) event("untracked", e->d_name);
    }
    i->named = 1;
    char line[NAME_MAX_LEN + 32];
    int n = snprintf(line, sizeof line, "%s\t%llu\n", e->d_name, (unsigned long long)i->id);
    if (REAL(write)(out, line, (size_t)n) != n) die("writing the shadow names file");
  }
  closedir(d);
  REAL(close)(out);
  if (rename(tmp, final) != 0) die("replacing the shadow names file");
  /* Content no durable name and no live file can reach again is garbage. */
  inode_t **pp = &inodes;
  while (*pp) {
    inode_t *i = *pp;
    if (!i->named && i->open_fds == 0) {
      char path[PATH_MAX];
      content_path(path, sizeof path, i->id);
      unlink(path);
      *pp = i->next;
      free(i->dirty);
      free(i);
    } else {
      pp = &i->next;
    }
  }
}

static void parse_kill_at(const char *spec) {
  const char *c1 = strchr(spec, ':');
  const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
  if (!c1 || !c2 || (size_t)(c1 - spec) > NAME_MAX_LEN) {
    errno = EINVAL;
    die("POWERLOSS_KILL_AT must be <name prefix>:<n>:<before|after>");
  }
  memcpy(kill_prefix, spec, (size_t)(c1 - spec));
  kill_n = strtol(c1 + 1, NULL, 10);
  kill_before = strcmp(c2 + 1, "before") == 0;
  if (kill_n <= 0 || (!kill_before && strcmp(c2 + 1, "after") != 0)) {
    errno = EINVAL;
    die("POWERLOSS_KILL_AT must be <name prefix>:<n>:<before|after>");
  }
}

/* check_kill_file re-arms (or disarms) the kill from POWERLOSS_KILL_FILE when the file was replaced since the last look. */
static void check_kill_file(void) {
  struct stat st;
  if (!kill_file[0]) return;
  if (stat(kill_file, &st) != 0) memset(&st, 0, sizeof st);
  if (st.st_ino == kill_file_seen.st_ino && st.st_size == kill_file_seen.st_size && st.st_mtim.tv_sec == kill_file_seen.st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == kill_file_seen.st_mtim.tv_nsec)
    return;
  kill_file_seen = st;
  kill_n = 0;
  kill_count = 0;
  char spec[NAME_MAX_LEN + 64] = {0};
  int fd = st.st_ino ? REAL(open)(kill_file, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0) return;
  ssize_t n = pread(fd, spec, sizeof spec - 1, 0);
  REAL(close)(fd);
  while (n > 0 && (spec[n - 1] == '\n' || spec[n - 1] == ' ')) spec[--n] = 0;
  if (n > 0) parse_kill_at(spec);
}

static void lock(void) { pthread_mutex_lock(&mu); }
static void unlock(void) { pthread_mutex_unlock(&mu); }

__attribute__((constructor)) static void powerloss_init(void) {
  const char *d = getenv("POWERLOSS_DIR");
  const char *s = getenv("POWERLOSS_SHADOW");
  if (!d || !s) return;
  if (!realpath(d, dir)) die("POWERLOSS_DIR");
  dir_len = strlen(dir);
  snprintf(shadow, sizeof shadow, "%s", s);
  char path[PATH_MAX];
  mkdir(shadow, 0755);
  shadow_path(path, sizeof path, "inodes");
  mkdir(path, 0755);
  DIR *old = opendir(path);
  if (!old) die("POWERLOSS_SHADOW/inodes");
  struct dirent *e;
  while ((e = readdir(old)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    unlink(p);
  }
  closedir(old);
  shadow_path(path, sizeof path, "events");
  events_fd = REAL(open)(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (events_fd < 0) die("POWERLOSS_SHADOW/events");
  const char *k = getenv("POWERLOSS_KILL_AT");
  if (k && *k) parse_kill_at(k);
  const char *kf = getenv("POWERLOSS_KILL_FILE");
  if (kf && *kf) {
    snprintf(kill_file, sizeof kill_file, "%s", kf);
  }
  commit_names(1);
  event("init", dir);
  unsetenv("LD_PRELOAD");
  unsetenv("POWERLOSS_DIR");
  unsetenv("POWERLOSS_SHADOW");
  unsetenv("POWERLOSS_KILL_AT");
  unsetenv("POWERLOSS_KILL_FILE");
  pthread_atfork(lock, unlock, unlock);
  enabled = 1;
}

/* ------------------------------------------------------- interposition */

static inline int kind_of(int fd) { return fd >= 0 && fd < FD_MAX ? __atomic_load_n(&fd_kind[fd], __ATOMIC_ACQUIRE) : 0; }

static void set_fd(int fd, int kind, inode_t *i) {
  if (fd < 0 || fd >= FD_MAX) return;
  fd_inode[fd] = i;
  if (i) i->open_fds++;
  __atomic_store_n(&fd_kind[fd], (unsigned char)kind, __ATOMIC_RELEASE);
}

static void clear_fd(int fd) {
  if (fd < 0 || fd >= FD_MAX || fd_kind[fd] == 0) return;
  if (fd_inode[fd]) fd_inode[fd]->open_fds--;
  fd_inode[fd] = NULL;
  __atomic_store_n(&fd_kind[fd], 0, __ATOMIC_RELEASE);
}

/* track registers a descriptor just opened (existed: the path existed before the open). */
static int track(int fd, int dirfd, const char *path, int flags, int existed) {
  char base[NAME_MAX_LEN + 1];
  int kind;
  if (fd >= 0 && kind_of(fd)) { /* a close the shim missed: the number now names another file */
    lock();
    clear_fd(fd);
    unlock();
  }
  if (fd < 0 || !enabled || (kind = classify(dirfd, path, base)) == 0) return fd;
  struct stat st;
  if (fstat(fd, &st) != 0) return fd;
  lock();
  clear_fd(fd);
  if (kind == 2 && S_ISDIR(st.st_mode)) {
    set_fd(fd, 2, NULL);
  } else if (kind == 1 && S_ISREG(st.st_mode)) {
    inode_t *i = find_inode(st.st_dev, st.st_ino);
    if (!existed || !i) {
      if (existed && !i) { /* an inode made by something the shim does not see: take it as it is */
        i = snapshot_file(base, &st);
        event("untracked", base);
      } else {
        i = new_inode(st.st_dev, st.st_ino, base);
      }
    }
    snprintf(i->name, sizeof i->name, "%s", base);
    if (flags & O_TRUNC) i->min_size = 0;
    set_fd(fd, 1, i);
  }
  unlock();
  return fd;
}

static int existed_before(int dirfd, const char *path, int flags) {
  char base[NAME_MAX_LEN + 1];
  if (!enabled || !(flags & O_CREAT) || classify(dirfd, path, base) != 1) return 1;
  struct stat st;
  return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

#define MODE_ARG(flags) \
  mode_t mode = 0; \
  if ((flags) & (O_CREAT | __O_TMPFILE)) { \
    va_list ap; \
    va_start(ap, flags); \
    mode = va_arg(ap, mode_t); \
    va_end(ap); \
  }

int open(const char *path, int flags, ...) {
  MODE_ARG(flags);
  int existed = existed_before(AT_FDCWD, path, flags);
  return track(REAL(open)(path, flags, mode), AT_FDCWD, path, flags, existed);
}
int open64(const char *path, int flags, ...) {
  MODE_ARG(flags);
  int existed = existed_before(AT_FDCWD, path, flags);
  return track(REAL(open64)(path, flags, mode), AT_FDCWD, path, flags, existed);
}
int openat(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  int existed = existed_before(dirfd, path, flags);
  return track(REAL(openat)(dirfd, path, flags, mode), dirfd, path, flags, existed);
}
int openat64(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  int existed = existed_before(dirfd, path, flags);
  return track(REAL(openat64)(dirfd, path, flags, mode), dirfd, path, flags, existed);
}
int creat(const char *path, mode_t mode) {
  int flags = O_CREAT | O_WRONLY | O_TRUNC;
  int existed = existed_before(AT_FDCWD, path, flags);
  return track(REAL(creat)(path, mode), AT_FDCWD, path, flags, existed);
}
int creat64(const char *path, mode_t mode) {
  int flags = O_CREAT | O_WRONLY | O_TRUNC;
  int existed = existed_before(AT_FDCWD, path, flags);
  return track(REAL(creat64)(path, mode), AT_FDCWD, path, flags, existed);
}

int close(int fd) {
  if (kind_of(fd)) {
    lock();
    clear_fd(fd);
    unlock();
  }
  return REAL(close)(fd);
}

static int dup_to(int from, int to) {
  if (to >= 0 && kind_of(from)) {
    lock();
    clear_fd(to);
    if (from >= 0 && from < FD_MAX) set_fd(to, fd_kind[from], fd_inode[from]);
    unlock();
  } else if (to >= 0 && kind_of(to)) {
    lock();
    clear_fd(to);
    unlock();
  }
  return to;
}
int dup(int fd) { return dup_to(fd, REAL(dup)(fd)); }
int dup2(int fd, int to) {
  if (fd == to) return REAL(dup2)(fd, to);
  return dup_to(fd, REAL(dup2)(fd, to));
}
int dup3(int fd, int to, int flags) { return dup_to(fd, REAL(dup3)(fd, to, flags)); }

/* wrote records [off, off+n) of a tracked file; off < 0: the write went at the file offset, now just past it. */
static void wrote(int fd, int64_t off, ssize_t n) {
  if (n <= 0 || kind_of(fd) != 1) return;
  lock();
  inode_t *i = fd_inode[fd];
  if (i) {
    if (off < 0) off = (int64_t)lseek(fd, 0, SEEK_CUR) - n;
    if (off < 0) i->all_dirty = 1;
    else add_range(i, (uint64_t)off, (uint64_t)off + (uint64_t)n);
  }
  unlock();
}

static void resized(int fd, int64_t len) {
  if (kind_of(fd) != 1) return;
  lock();
  inode_t *i = fd_inode[fd];
  if (i && (uint64_t)len < i->min_size) i->min_size = (uint64_t)len;
  unlock();
}

static void all_dirty(int fd) {
  if (kind_of(fd) != 1) return;
  lock();
  if (fd_inode[fd]) fd_inode[fd]->all_dirty = 1;
  unlock();
}

ssize_t write(int fd, const void *b, size_t n) {
  ssize_t r = REAL(write)(fd, b, n);
  wrote(fd, -1, r);
  return r;
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t off) {
  ssize_t r = REAL(pwrite)(fd, b, n, off);
  wrote(fd, off, r);
  return r;
}
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t off) {
  ssize_t r = REAL(pwrite64)(fd, b, n, off);
  wrote(fd, off, r);
  return r;
}
ssize_t writev(int fd, const struct iovec *v, int c) {
  ssize_t r = REAL(writev)(fd, v, c);
  wrote(fd, -1, r);
  return r;
}
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t off) {
  ssize_t r = REAL(pwritev)(fd, v, c, off);
  wrote(fd, off, r);
  return r;
}
ssize_t pwritev64(int fd, const struct iovec *v, int c, off64_t off) {
  ssize_t r = REAL(pwritev64)(fd, v, c, off);
  wrote(fd, off, r);
  return r;
}
ssize_t pwritev2(int fd, const struct iovec *v, int c, off_t off, int flags) {
  ssize_t r = REAL(pwritev2)(fd, v, c, off, flags);
  wrote(fd, off, r);
  return r;
}
ssize_t pwritev64v2(int fd, const struct iovec *v, int c, off64_t off, int flags) {
  ssize_t r = REAL(pwritev64v2)(fd, v, c, off, flags);
  wrote(fd, off, r);
  return r;
}

int ftruncate(int fd, off_t len) {
  int r = REAL(ftruncate)(fd, len);
  if (r == 0) resized(fd, len);
  return r;
}
int ftruncate64(int fd, off64_t len) {
  int r = REAL(ftruncate64)(fd, len);
  if (r == 0) resized(fd, len);
  return r;
}

static void truncated_path(const char *path, int64_t len) {
  char base[NAME_MAX_LEN + 1];
  struct stat st;
  if (!enabled || classify(AT_FDCWD, path, base) != 1 || stat(path, &st) != 0) return;
  lock();
  inode_t *i = find_inode(st.st_dev, st.st_ino);
  if (i && (uint64_t)len < i->min_size) i->min_size = (uint64_t)len;
  unlock();
}
int truncate(const char *path, off_t len) {
  int r = REAL(truncate)(path, len);
  if (r == 0) truncated_path(path, len);
  return r;
}
int truncate64(const char *path, off64_t len) {
  int r = REAL(truncate64)(path, len);
  if (r == 0) truncated_path(path, len);
  return r;
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  int r = REAL(fallocate)(fd, mode, off, len);
  if (r == 0) all_dirty(fd);
  return r;
}
int fallocate64(int fd, int mode, off64_t off, off64_t len) {
  int r = REAL(fallocate64)(fd, mode, off, len);
  if (r == 0) all_dirty(fd);
  return r;
}
int posix_fallocate(int fd, off_t off, off_t len) {
  int r = REAL(posix_fallocate)(fd, off, len);
  if (r == 0) all_dirty(fd);
  return r;
}
int posix_fallocate64(int fd, off64_t off, off64_t len) {
  int r = REAL(posix_fallocate64)(fd, off, len);
  if (r == 0) all_dirty(fd);
  return r;
}
ssize_t sendfile(int out, int in, off_t *off, size_t n) {
  ssize_t r = REAL(sendfile)(out, in, off, n);
  if (r > 0) all_dirty(out);
  return r;
}
ssize_t sendfile64(int out, int in, off64_t *off, size_t n) {
  ssize_t r = REAL(sendfile64)(out, in, off, n);
  if (r > 0) all_dirty(out);
  return r;
}
ssize_t copy_file_range(int in, loff_t *ioff, int out, loff_t *ooff, size_t n, unsigned int flags) {
  ssize_t r = REAL(copy_file_range)(in, ioff, out, ooff, n, flags);
  if (r > 0) all_dirty(out);
  return r;
}

static void mapped(int fd, int prot, int flags) {
  if (!(prot & PROT_WRITE) || !(flags & MAP_SHARED) || kind_of(fd) != 1) return;
  lock();
  if (fd_inode[fd]) fd_inode[fd]->mapped = 1;
  unlock();
}
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  void *r = REAL(mmap)(addr, len, prot, flags, fd, off);
  if (r != MAP_FAILED) mapped(fd, prot, flags);
  return r;
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off) {
  void *r = REAL(mmap64)(addr, len, prot, flags, fd, off);
  if (r != MAP_FAILED) mapped(fd, prot, flags);
  return r;
}

/* kill_matches says whether a file's fsyncs count towards the kill ("name$": that name exactly; else a name prefix). */
static int kill_matches(const char *name) {
  size_t n = strlen(kill_prefix);
  if (n > 0 && kill_prefix[n - 1] == '$') return strlen(name) == n - 1 && strncmp(name, kill_prefix, n - 1) == 0;
  return strncmp(name, kill_prefix, n) == 0;
}

/* maybe_kill SIGKILLs the process when this is the POWERLOSS_KILL_AT point (at_before: the fsync is not yet recorded). */
static void maybe_kill(const char *name, int at_before) {
  if (kill_n == 0 || kill_count != kill_n || kill_before != at_before) return;
  event(at_before ? "kill-before" : "kill-after", name);
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

/* synced runs after a successful fsync/fdatasync: the file (or the directory's names) becomes durable. */
static void synced(int fd) {
  int k = kind_of(fd);
  if (k == 0) return;
  lock();
  if (k == 2) {
    commit_names(0);
    event("dirsync", ".");
  } else if (fd_inode[fd]) {
    inode_t *i = fd_inode[fd];
    check_kill_file();
    if (kill_n > 0 && kill_matches(i->name)) kill_count++;
    maybe_kill(i->name, 1);
    sync_inode(i, fd);
    event("fsync", i->name);
    maybe_kill(i->name, 0);
  }
  unlock();
}

int fsync(int fd) {
  int r = REAL(fsync)(fd);
  if (r == 0) synced(fd);
  return r;
}
int fdatasync(int fd) {
  int r = REAL(fdatasync)(fd);
  if (r == 0) synced(fd);
  return r;
}
