// The parent's side of a test's child process that reports through a pipe: what it wrote, read to
// the end, and how it ended.
#pragma once

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace onnxforge::testing {

struct ChildResult {
  std::string output;  // all the child wrote to the pipe
  int status = 0;      // waitpid's status: WIFEXITED, WEXITSTATUS, ...
};

// Reads `fd`, the read end of the child's pipe (the parent has closed its write end), until the
// child closes it, closes it, then waits for `child`.
inline ChildResult finish_child(pid_t child, int fd) {
  ChildResult result;
  char buffer[512];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) result.output.append(buffer, n);
  ::close(fd);
  ::waitpid(child, &result.status, 0);
  return result;
}

}  // namespace onnxforge::testing
