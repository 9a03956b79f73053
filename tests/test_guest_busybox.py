"""A static busybox shell under the kernel: pipes, redirections, jobs, signals.

Each test runs one ``busybox sh -c`` script as the guest's first process and
checks its whole output, so that one guest start covers one shell feature
family.  The expected outputs are those of the same scripts run natively.
"""

from __future__ import annotations

import textwrap

import pytest

from guestroot import describe, run_guest


def sh(root, script: str, **kw):
    return run_guest(root, ["/bin/sh", "-c", textwrap.dedent(script)], **kw)


def test_true_and_false_exit_status(busybox_root):
    res = run_guest(busybox_root, ["/bin/true"])
    assert res.returncode == 0, describe(res)
    res = run_guest(busybox_root, ["/bin/false"])
    assert res.returncode == 1, describe(res)


def test_exit_status_propagation(busybox_root):
    res = sh(busybox_root, """
        (exit 3); echo "subshell=$?"
        sh -c 'exit 7'; echo "child=$?"
        false | true; echo "pipeline=$?"
        true | false; echo "pipeline2=$?"
        ! true; echo "negated=$?"
        exit 42
    """)
    assert res.returncode == 42, describe(res)
    assert res.stdout == "subshell=3\nchild=7\npipeline=0\npipeline2=1\nnegated=1\n", describe(res)


def test_first_process_is_pid_1(busybox_root):
    res = sh(busybox_root, """
        echo "self=$$"
        sh -c 'echo "child=$$ parent=$PPID"'
        ( echo "subshell-sees=$$" )
    """)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "self=1", describe(res)
    child, parent = lines[1].split()
    assert parent == "parent=1", describe(res)
    assert child.startswith("child=") and child != "child=1" and int(child[6:]) > 1, describe(res)
    assert lines[2] == "subshell-sees=1", describe(res)


def test_pipes(busybox_root):
    res = sh(busybox_root, """
        echo "pear apple fig" | tr ' ' '\\n' | sort | head -n 2
        seq 1 20000 | wc -l
        yes | head -n 3000 | wc -l
        echo abc | cat | cat | cat | tr a-z A-Z
    """)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == ["apple", "fig", "20000", "3000", "ABC"], describe(res)


def test_redirections(busybox_root):
    res = sh(busybox_root, """
        d=/tmp/test_redirections; rm -rf $d; mkdir -p $d
        echo hello > $d/f
        echo more >> $d/f
        cat $d/f
        wc -l < $d/f
        echo discarded > /dev/null
        cat /dev/null | wc -c
        ls /does-not-exist 2> $d/err || echo "ls-failed"
        test -s $d/err && echo "stderr-captured"
        ls /does-not-exist 2>/dev/null; echo "status=$?"
        exec 3> $d/g
        echo via-fd-3 >&3
        exec 3>&-
        cat $d/g
        { echo out; echo err >&2; } > $d/both 2>&1
        sort $d/both | tr '\\n' ' '; echo
        head -c 16 /dev/urandom | wc -c
        head -c 8 /dev/zero | od -An -tx1 | tr -d ' \\n'; echo
    """)
    assert res.returncode == 0, describe(res)
    assert res.stdout == ("hello\nmore\n2\n0\nls-failed\nstderr-captured\nstatus=1\n"
                          "via-fd-3\nerr out \n16\n0000000000000000\n"), describe(res)
    assert res.stderr == "", describe(res)


def test_loops_arithmetic_and_subshells(busybox_root):
    res = sh(busybox_root, """
        for i in 1 2 3; do printf '%s,' $i; done; echo
        i=0; while [ $i -lt 50 ]; do i=$((i + 1)); done; echo "i=$i"
        echo $(( 6 * 7 )) $(( 2 ** 10 )) $(( 17 % 5 )) $(( (3 + 4) * -2 )) $(( 1 << 20 ))
        x=outer; ( x=inner; echo "in=$x" ); echo "out=$x"
        v=$(echo nested $(echo deeper)); echo "$v"
        n=0; for w in $(seq 1 10); do n=$((n + w)); done; echo "sum=$n"
        case "foo.tar.gz" in *.gz) echo gz;; *) echo other;; esac
    """)
    assert res.returncode == 0, describe(res)
    assert res.stdout == ("1,2,3,\ni=50\n42 1024 2 -14 1048576\nin=inner\nout=outer\n"
                          "nested deeper\nsum=55\ngz\n"), describe(res)


def test_here_documents(busybox_root):
    res = sh(busybox_root, """
        name=world
        cat <<EOF
        hello $name $((40 + 2))
        EOF
        cat <<'EOF'
        literal $name
        EOF
        tr a-z A-Z <<EOF | wc -c
        $(seq 1 2000)
        EOF
    """)
    assert res.returncode == 0, describe(res)
    # seq 1 2000 prints 8893 bytes; $(...) drops the last newline, the here-doc adds one.
    assert res.stdout == "hello world 42\nliteral $name\n8893\n", describe(res)


def test_background_jobs_and_wait(busybox_root):
    res = sh(busybox_root, """
        sleep 0.2 & a=$!
        (exit 5) & b=$!
        sh -c 'exit 9' & c=$!
        wait $a; echo "a=$?"
        wait $b; echo "b=$?"
        wait $c; echo "c=$?"
        for i in 1 2 3 4; do (sleep 0.1; echo "job$i") & done
        wait
        echo "all-done"
        [ "$a" != "$b" ] && [ "$a" -gt 1 ] && echo "distinct-pids"
    """)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[:3] == ["a=0", "b=5", "c=9"], describe(res)
    assert sorted(lines[3:7]) == ["job1", "job2", "job3", "job4"], describe(res)
    assert lines[7:] == ["all-done", "distinct-pids"], describe(res)


def test_kill_background_sleep(busybox_root):
    res = sh(busybox_root, """
        sleep 100 & p=$!
        kill $p
        wait $p; echo "term=$?"
        sleep 100 & p=$!
        kill -9 $p
        wait $p; echo "kill=$?"
        sleep 100 & p=$!
        busybox kill -HUP $p
        wait $p; echo "hup=$?"
        kill -0 $p 2>/dev/null || echo "gone"
    """, timeout=60)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "term=143\nkill=137\nhup=129\ngone\n", describe(res)


def test_trap_in_subshell_signalled_by_other_process(busybox_root):
    res = sh(busybox_root, """
        d=/tmp/test_trap; rm -rf $d; mkdir -p $d
        ( trap 'echo "got USR1"; exit 3' USR1
          touch $d/ready
          while :; do sleep 0.05; done ) & p=$!
        while [ ! -e $d/ready ]; do sleep 0.05; done
        sh -c "kill -USR1 $p"
        wait $p; echo "sub=$?"
        trap 'echo "parent got USR2"' USR2
        sh -c 'kill -USR2 $PPID'
        echo "after"
        trap 'echo "exit trap"' EXIT
    """, timeout=60)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "got USR1\nsub=3\nparent got USR2\nafter\nexit trap\n", describe(res)


def test_scripts_and_exec(busybox_root):
    res = sh(busybox_root, """
        d=/tmp/test_scripts; rm -rf $d; mkdir -p $d
        printf '#!/bin/sh\\necho "script $1 $#"\\nexit 4\\n' > $d/s.sh
        chmod +x $d/s.sh
        $d/s.sh one; echo "status=$?"
        printf '#!/usr/bin/env sh\\necho "via env"\\n' > $d/e.sh
        chmod +x $d/e.sh
        $d/e.sh
        cd $d && ./s.sh two; echo "relative=$?"
        /bin/busybox echo "direct"
        exec /bin/echo "exec replaced the shell"
        echo "not reached"
    """)
    assert res.returncode == 0, describe(res)
    assert res.stdout == ("script one 1\nstatus=4\nvia env\nscript two 1\nrelative=4\n"
                          "direct\nexec replaced the shell\n"), describe(res)


def test_stdin_passthrough_and_cwd(busybox_root):
    res = sh(busybox_root, """
        read first
        echo "first=$first"
        sort -r | head -n 2
        cd /tmp && pwd
        cd /../../.. && pwd
    """, input="line-one\nb\nc\na\n")
    assert res.returncode == 0, describe(res)
    assert res.stdout == "first=line-one\nc\nb\n/tmp\n/\n", describe(res)


@pytest.mark.slow
def test_many_processes_and_bulk_pipe(busybox_root):
    res = sh(busybox_root, """
        i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i + 1)); done; echo "forks=$i"
        dd if=/dev/zero bs=65536 count=1000 2>/dev/null | cat | wc -c
    """, timeout=300)
    assert res.returncode == 0, describe(res)
    assert res.stdout == "forks=300\n65536000\n", describe(res)
