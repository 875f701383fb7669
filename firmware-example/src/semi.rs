//! Semihosting (QEMU `-semihosting-config enable=on,target=native`): the host's stdin and
//! stdout as a byte link (the fast transport), the host's stderr for the report lines, the
//! command line, and exit codes.
//!
//! QEMU maps `:tt` opened for reading to its own stdin, for writing to its stdout, for
//! appending to its stderr, and runs each call synchronously on the host (a read blocks
//! the CPU until the host sends something or closes the pipe).

use core::sync::atomic::{AtomicUsize, Ordering};

use cortex_m_semihosting::{nr, syscall1};
use embedded_io::{ErrorKind, ErrorType, Read, Write};

fn call(op: usize, args: &[usize]) -> usize {
    // SAFETY: a semihosting call with an argument block that lives across the call; the
    // pointers inside it point at buffers borrowed by the caller for the call's duration.
    unsafe { syscall1(op, args.as_ptr() as usize) }
}

/// Opens a host file (`name` NUL-terminated) in semihosting `mode`.
pub fn open(name: &[u8], mode: usize) -> Result<usize, ErrorKind> {
    match call(nr::OPEN, &[name.as_ptr() as usize, mode, name.len() - 1]) as isize {
        -1 => Err(ErrorKind::NotFound),
        fd => Ok(fd as usize),
    }
}

/// Writes all of `bytes` to handle `fd`.
pub fn write_all(fd: usize, mut bytes: &[u8]) -> Result<(), ErrorKind> {
    while !bytes.is_empty() {
        let left = call(nr::WRITE, &[fd, bytes.as_ptr() as usize, bytes.len()]);
        if left == 0 {
            return Ok(());
        }
        if left > bytes.len() {
            return Err(ErrorKind::BrokenPipe);
        }
        if left == bytes.len() {
            return Err(ErrorKind::WriteZero);
        }
        bytes = &bytes[bytes.len() - left..];
    }
    Ok(())
}

static STDERR: AtomicUsize = AtomicUsize::new(0);

/// Writes to the host's stderr (opened once; errors are ignored: there is nowhere else to
/// report them).
pub fn stderr(bytes: &[u8]) {
    let mut fd = STDERR.load(Ordering::Relaxed);
    if fd == 0 {
        match open(b":tt\0", nr::open::W_APPEND) {
            Ok(h) => {
                fd = h;
                STDERR.store(h, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
    let _ = write_all(fd, bytes);
}

/// The command line QEMU was given (`-semihosting-config ...,arg=...`, or the kernel path
/// and `-append`), as UTF-8.
pub fn cmdline(buf: &mut [u8]) -> &str {
    let mut block = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most block[1] bytes into buf and the length into
    // block[1].
    let r = unsafe { syscall1(nr::GET_CMDLINE, block.as_mut_ptr() as usize) };
    if r != 0 {
        return "";
    }
    let n = block[1].min(buf.len());
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Ends the program: QEMU exits with status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached if the debugger let the program continue.
    loop {
        cortex_m::asm::wfi();
    }
}

/// The host's stdin and stdout as one byte link; writes are buffered until `flush`.
pub struct Stdio {
    stdin: usize,
    stdout: usize,
    out: heapless::Vec<u8, 4096>,
}

impl Stdio {
    /// Opens the host's stdin and stdout.
    pub fn open() -> Result<Self, ErrorKind> {
        Ok(Stdio {
            stdin: open(b":tt\0", nr::open::R)?,
            stdout: open(b":tt\0", nr::open::W_TRUNC)?,
            out: heapless::Vec::new(),
        })
    }
}

impl ErrorType for Stdio {
    type Error = ErrorKind;
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = call(
            nr::READ,
            &[self.stdin, buf.as_mut_ptr() as usize, buf.len()],
        );
        if left > buf.len() {
            return Err(ErrorKind::Other);
        }
        // 0 bytes read: the host closed the pipe (end of stream).
        Ok(buf.len() - left)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if self.out.is_full() {
            self.flush()?;
        }
        let n = buf.len().min(self.out.capacity() - self.out.len());
        let _ = self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        if !self.out.is_empty() {
            write_all(self.stdout, &self.out)?;
            self.out.clear();
        }
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes of the host file `path` (QEMU opens it relative to its
/// working directory); returns how many were read.
pub fn read_file(path: &str, buf: &mut [u8]) -> Result<usize, ErrorKind> {
    let mut name: heapless::Vec<u8, 320> = heapless::Vec::new();
    if name.extend_from_slice(path.as_bytes()).is_err() || name.push(0).is_err() {
        return Err(ErrorKind::InvalidInput);
    }
    let fd = open(&name, nr::open::R)?;
    let mut got = 0;
    while got < buf.len() {
        let want = buf.len() - got;
        let left = call(nr::READ, &[fd, buf[got..].as_mut_ptr() as usize, want]);
        if left > want {
            got = usize::MAX;
            break;
        }
        if left == want {
            break;
        }
        got += want - left;
    }
    call(nr::CLOSE, &[fd]);
    if got == usize::MAX {
        return Err(ErrorKind::Other);
    }
    Ok(got)
}
