// The syscalls lastword needs as PID 1 of the capture initramfs and that Node does not offer:
// mount(2), umount2(2), reboot(2), sync(2), sethostname(2), setsid(2) + TIOCSCTTY, finit_module(2),
// dup2(2) for taking the console, and reaping orphans without stealing libuv's children; reads of
// /proc/vmcore through mappings of it (vmcore-window.h) for the main thread; giving back the pages
// of the executable's start-up assets (dropFilePages).
// Every failure throws an Error whose code is the errno name (EPERM), with errno and syscall set,
// the shape of Node's own system errors.
#include <napi.h>

#include "vmcore-window.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

namespace {

// Errno names without strerrorname_np (glibc 2.32): the initramfs may carry an older libc.
const char* ErrnoName(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD)
    E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(ENOTBLK) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
    E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC)
    E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY)
    E(ELOOP) E(ENOKEY) E(EKEYREJECTED) E(ENODATA) E(EBADMSG)
    E(EOVERFLOW) E(ENOPKG) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(ENETUNREACH) E(ESTALE)
    E(EOPNOTSUPP) E(EUCLEAN) E(EKEYEXPIRED)
#undef E
    default: return nullptr;
  }
}

[[noreturn]] void ThrowErrno(Napi::Env env, const char* syscall, const std::string& detail, int err) {
  const char* name = ErrnoName(err);
  std::string code = name ? name : "E" + std::to_string(err);
  std::string msg = code + ": " + strerror(err) + ", " + syscall + (detail.empty() ? "" : " '" + detail + "'");
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));  // negative, as libuv reports errno in Node
  e.Set("syscall", Napi::String::New(env, syscall));
  throw e;
}

std::string Str(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int64_t Int(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

// mount(source, target, fstype, flags, data)
Napi::Value Mount(const Napi::CallbackInfo& info) {
  std::string src = Str(info, 0), target = Str(info, 1), fstype = Str(info, 2), data = Str(info, 4);
  unsigned long flags = static_cast<unsigned long>(Int(info, 3));
  if (mount(src.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
            data.empty() ? nullptr : data.c_str()) != 0) {
    ThrowErrno(info.Env(), "mount", src + " on " + target + (fstype.empty() ? "" : " (" + fstype + ")"), errno);
  }
  return info.Env().Undefined();
}

Napi::Value Umount2(const Napi::CallbackInfo& info) {
  std::string target = Str(info, 0);
  if (umount2(target.c_str(), static_cast<int>(Int(info, 1))) != 0) ThrowErrno(info.Env(), "umount2", target, errno);
  return info.Env().Undefined();
}

// reboot(cmd) with RB_AUTOBOOT / RB_POWER_OFF / RB_HALT_SYSTEM; returns only on failure (throws).
Napi::Value Reboot(const Napi::CallbackInfo& info) {
  unsigned cmd = static_cast<unsigned>(Int(info, 0));
  if (cmd != RB_AUTOBOOT && cmd != RB_POWER_OFF && cmd != RB_HALT_SYSTEM) {
    throw Napi::RangeError::New(info.Env(), "reboot: command must be RB_AUTOBOOT, RB_POWER_OFF or RB_HALT_SYSTEM");
  }
  sync();
  if (reboot(static_cast<int>(cmd)) != 0) ThrowErrno(info.Env(), "reboot", "", errno);
  // RB_HALT_SYSTEM returns 0 after halting other CPUs on some kernels; nothing more to do
  return info.Env().Undefined();
}

Napi::Value Sync(const Napi::CallbackInfo& info) {
  sync();
  return info.Env().Undefined();
}

Napi::Value Sethostname(const Napi::CallbackInfo& info) {
  std::string name = Str(info, 0);
  if (sethostname(name.c_str(), name.size()) != 0) ThrowErrno(info.Env(), "sethostname", name, errno);
  return info.Env().Undefined();
}

// setsid() then ioctl(fd, TIOCSCTTY, 1). setsid fails with EPERM for a process group leader,
// which PID 1 and a session leader already are: then only the ioctl matters.
Napi::Value SetControllingTerminal(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(Int(info, 0));
  if (setsid() < 0 && errno != EPERM) ThrowErrno(info.Env(), "setsid", "", errno);
  if (ioctl(fd, TIOCSCTTY, 1) != 0) ThrowErrno(info.Env(), "ioctl", "TIOCSCTTY", errno);
  return info.Env().Undefined();
}

Napi::Value Setsid(const Napi::CallbackInfo& info) {
  pid_t sid = setsid();
  if (sid < 0) ThrowErrno(info.Env(), "setsid", "", errno);
  return Napi::Number::New(info.Env(), sid);
}

// finit_module(fd, params, flags): glibc has no wrapper before 2.37.
Napi::Value FinitModule(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(Int(info, 0));
  std::string params = Str(info, 1);
  int flags = static_cast<int>(Int(info, 2));
  if (syscall(SYS_finit_module, fd, params.c_str(), flags) != 0) ThrowErrno(info.Env(), "finit_module", params, errno);
  return info.Env().Undefined();
}

Napi::Value Dup2(const Napi::CallbackInfo& info) {
  int from = static_cast<int>(Int(info, 0)), to = static_cast<int>(Int(info, 1));
  if (dup2(from, to) < 0) ThrowErrno(info.Env(), "dup2", std::to_string(from) + " -> " + std::to_string(to), errno);
  return info.Env().Undefined();
}

// pipe2(O_CLOEXEC) -> [readFd, writeFd], both blocking: a child's stdout that is read with fs.read
// into one buffer (a Node stream allocates a new Buffer per read; see cli/filter-try.ts).
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno(info.Env(), "pipe2", "", errno);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(uint32_t(0), Napi::Number::New(info.Env(), fds[0]));
  out.Set(uint32_t(1), Napi::Number::New(info.Env(), fds[1]));
  return out;
}

// Reaps exited children that are not in `keep` (the pids libuv spawned and will wait for itself).
// waitid(WNOWAIT) peeks without reaping; a kept child at the head of the queue stops the round,
// since peeking would return it again until libuv reaps it: the next SIGCHLD resumes.
Napi::Value ReapOrphans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "reapOrphans(keep: number[])");
  Napi::Array keepArr = info[0].As<Napi::Array>();
  std::set<pid_t> keep;
  for (uint32_t i = 0; i < keepArr.Length(); i++) keep.insert(static_cast<pid_t>(keepArr.Get(i).As<Napi::Number>().Int32Value()));
  std::vector<pid_t> reaped;
  for (int round = 0; round < 4096; round++) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == ECHILD) break;
      if (errno == EINTR) continue;
      ThrowErrno(env, "waitid", "", errno);
    }
    if (si.si_pid == 0 || keep.count(si.si_pid)) break;
    int status;
    if (waitpid(si.si_pid, &status, WNOHANG) == si.si_pid) reaped.push_back(si.si_pid);
    else break;
  }
  Napi::Array out = Napi::Array::New(env, reaped.size());
  for (size_t i = 0; i < reaped.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, reaped[i]));
  return out;
}

Napi::Value Getpid(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), getpid());
}

// The main thread's window onto the vmcore (JavaScript runs on one thread).
lastword::VmcoreWindow mainWindow;
unsigned mainGeneration = 0;

// readMapped(fd, buf, offset): fills buf from offset of fd through a mapping. Returns 0, -1 when the
// range reaches past the end of the file, the errno of a failed mmap (the caller then reads), or
// minus the errno of a load that faulted (-EIO, -EHWPOISON: mapped-fault.h; not to be read again).
Napi::Value ReadMapped(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Buffer<unsigned char>>();
  double off = info[2].As<Napi::Number>().DoubleValue();
  int r = mainWindow.read(fd, mainGeneration, buf.Data(), buf.Length(), static_cast<off_t>(off));
  return Napi::Number::New(info.Env(), r);
}

// unmapVmcore(): the vmcore is closed; returns the windows mapped since the last call.
Napi::Value UnmapVmcore(const Napi::CallbackInfo& info) {
  unsigned long n = mainWindow.windows();
  mainWindow.reset();
  mainGeneration++;
  static unsigned long reported = 0;
  unsigned long since = n - reported;
  reported = n;
  return Napi::Number::New(info.Env(), static_cast<double>(since));
}

// Whether [lo, hi) lies in one mapping of this process that is a private, read-only mapping of a
// file (/proc/self/maps: perms r-?p, an inode): its pages are the file's, never written here.
bool ReadOnlyFileMapping(uintptr_t lo, uintptr_t hi) {
  FILE* f = fopen("/proc/self/maps", "re");
  if (!f) return false;
  char line[512];
  bool ok = false, atLineStart = true;
  while (fgets(line, sizeof line, f)) {
    bool start = atLineStart;
    atLineStart = strchr(line, '\n') != nullptr;      // a long path continues on the next read
    if (!start) continue;
    unsigned long s, e, off, ino;
    unsigned dmaj, dmin;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &s, &e, perms, &off, &dmaj, &dmin, &ino) != 7) continue;
    if (s <= lo && hi <= e) {
      ok = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && ino != 0;
      break;
    }
  }
  fclose(f);
  return ok;
}

// dropFilePages(arrayBuffer): the pages wholly inside the buffer's memory leave this process's
// resident set (madvise MADV_DONTNEED) when that memory is a private read-only mapping of a file:
// the executable's SEA assets (the bundle, its code cache, the addons' images), which are read once
// at start-up. The file's pages stay in the page cache, where the kernel can reclaim them, and a
// later read faults them in again, unchanged. Returns the bytes given back: 0 for any other memory
// (anonymous, writable, several mappings), which is left alone.
Napi::Value DropFilePages(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "dropFilePages(arrayBuffer)");
  auto ab = info[0].As<Napi::ArrayBuffer>();
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t p = reinterpret_cast<uintptr_t>(ab.Data());
  const uintptr_t lo = (p + page - 1) & ~(page - 1), hi = (p + ab.ByteLength()) & ~(page - 1);
  if (ab.Data() == nullptr || hi <= lo || !ReadOnlyFileMapping(lo, hi)) return Napi::Number::New(info.Env(), 0);
  if (madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) != 0) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), static_cast<double>(hi - lo));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("mount", Napi::Function::New(env, Mount));
  exports.Set("umount2", Napi::Function::New(env, Umount2));
  exports.Set("reboot", Napi::Function::New(env, Reboot));
  exports.Set("sync", Napi::Function::New(env, Sync));
  exports.Set("sethostname", Napi::Function::New(env, Sethostname));
  exports.Set("setControllingTerminal", Napi::Function::New(env, SetControllingTerminal));
  exports.Set("setsid", Napi::Function::New(env, Setsid));
  exports.Set("finitModule", Napi::Function::New(env, FinitModule));
  exports.Set("dup2", Napi::Function::New(env, Dup2));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("reapOrphans", Napi::Function::New(env, ReapOrphans));
  exports.Set("getpid", Napi::Function::New(env, Getpid));
  exports.Set("readMapped", Napi::Function::New(env, ReadMapped));
  exports.Set("unmapVmcore", Napi::Function::New(env, UnmapVmcore));
  exports.Set("dropFilePages", Napi::Function::New(env, DropFilePages));
  Napi::Object rb = Napi::Object::New(env);
  rb.Set("RB_AUTOBOOT", Napi::Number::New(env, RB_AUTOBOOT));
  rb.Set("RB_POWER_OFF", Napi::Number::New(env, RB_POWER_OFF));
  rb.Set("RB_HALT_SYSTEM", Napi::Number::New(env, RB_HALT_SYSTEM));
  exports.Set("constants", rb);
  return exports;
}

}  // namespace

NODE_API_MODULE(system, Init)
