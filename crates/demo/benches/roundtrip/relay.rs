//! The floor of an added process on the stdio path: with `ROUNDTRIP_RELAY`
//! set, this bench binary starts the command after `--` and copies bytes
//! from its own stdin to the command's and from the command's stdout to
//! its own, one thread per direction, and does nothing else: no parsing,
//! no policy, no log. What warden adds over this row is warden's own work;
//! what this row adds over the direct path is the price of any process in
//! between (two more pipe hops and their wake-ups) on this machine.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// Copies `from` to `to` until `from` ends, flushing after every read, so
/// a line goes on as soon as it arrives.
fn copy_all(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs the relay in front of the command after `--`; returns its exit code.
pub fn run() -> i32 {
    let argv: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let Some((program, rest)) = argv.split_first() else {
        eprintln!("ROUNDTRIP_RELAY: no command after `--`");
        return 2;
    };
    let mut child = match Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ROUNDTRIP_RELAY: cannot start `{program}`: {e}");
            return 2;
        }
    };
    let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
        return 2;
    };
    // The thread ends with stdin; the process ends when the command has
    // closed its stdout and exited, without waiting for it.
    std::thread::spawn(move || copy_all(std::io::stdin().lock(), child_in));
    copy_all(child_out, std::io::stdout().lock());
    child.wait().ok().and_then(|s| s.code()).unwrap_or(1)
}
