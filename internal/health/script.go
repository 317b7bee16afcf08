package health

import (
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// ScriptRunner starts programs: MISC_CHECK's misc_path and the notify_up,
// notify_down, quorum_up and quorum_down scripts. The checker enforces
// timeouts itself, on its Clock, through Process.Signal.
type ScriptRunner interface {
	Start(s Script) (Process, error)
}

// Process is a started program.
type Process interface {
	// Wait blocks until the program exits.
	Wait() (Exit, error)
	// Signal signals the program and every process of its process group
	// (scripts may fork).
	Signal(sig syscall.Signal) error
}

// Exit is how a program ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal killed the program.
	Code   int
	Signal syscall.Signal
}

func (e Exit) String() string {
	if e.Code < 0 {
		return "killed by " + e.Signal.String()
	}
	return "exit status " + strconv.Itoa(e.Code)
}

// ExecRunner runs scripts with os/exec, each in a new process group, with
// stdin, stdout and stderr on /dev/null (as keepalived does).
type ExecRunner struct {
	// Env is the scripts' environment; nil inherits the daemon's.
	Env []string
}

// Start starts s.
func (r ExecRunner) Start(s Script) (Process, error) {
	if s.IsZero() {
		return nil, errors.New("empty script")
	}
	cmd := exec.Command(s.Args[0], s.Args[1:]...)
	cmd.Env = r.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.User != "" || s.Group != "" {
		cred, err := credential(s.User, s.Group)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", s.Args[0], err)
		}
		cmd.SysProcAttr.Credential = cred
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &execProcess{cmd: cmd}, nil
}

func credential(userName, groupName string) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid())}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			return nil, fmt.Errorf("script user: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			return nil, fmt.Errorf("script group: %w", err)
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		cred.Gid = uint32(gid)
	}
	return cred, nil
}

type execProcess struct{ cmd *exec.Cmd }

func (p *execProcess) Wait() (Exit, error) {
	err := p.cmd.Wait()
	st := p.cmd.ProcessState
	if st == nil {
		return Exit{Code: -1}, err
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal()}, nil
	}
	return Exit{Code: st.ExitCode()}, nil
}

func (p *execProcess) Signal(sig syscall.Signal) error {
	// The negative pid addresses the process group Setpgid created.
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}
