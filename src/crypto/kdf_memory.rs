//! Argon2id's working memory (64 MiB by default) on transparent huge pages.
//!
//! Argon2 reads its memory in a data-dependent random order. In 4 KiB pages that is
//! 16,384 page faults to fill it and a TLB miss on most reads; with 2 MiB pages
//! (`MADV_HUGEPAGE`, which the kernel honours when THP is `always` or `madvise`)
//! the same derivation took 84–88 ms instead of 124–139 ms here, and every command
//! opens a key once. The result is the same: only where the bytes live changes.
//! Where the mapping fails, Argon2 allocates its own memory.
//!
//! The first touch of a page is the rest of the cost, and in this virtual machine
//! it varies: after other programs freed a few GiB, an unlock took 210–229 ms. A
//! helper thread faults the pages in from the far end (`MADV_POPULATE_WRITE`)
//! while Argon2 fills them from the start on the other core: 101–166 ms then, and
//! 82–91 ms against 87–98 ms in the usual case.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use argon2::Block;

/// An anonymous private mapping of `n` Argon2 blocks, unmapped on drop. Unmapped
/// pages go back to the kernel, which clears them before any reuse, and are never
/// handed out again by this process's allocator.
pub struct KdfMemory {
    ptr: *mut libc::c_void,
    len: usize,
    blocks: usize,
    /// Faults the mapping in from its end while Argon2 fills it from the start.
    helper: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// The size of a transparent huge page on x86-64 and arm64 (4 KiB base pages).
const HUGE: usize = 2 * 1024 * 1024;

impl KdfMemory {
    pub fn new(blocks: usize) -> Option<KdfMemory> {
        let len = blocks.checked_mul(Block::SIZE)?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // Advice only: without huge pages it is the same memory in small pages.
        // SAFETY: the range is exactly the mapping made above.
        unsafe { libc::madvise(ptr, len, libc::MADV_HUGEPAGE) };
        // The first touch of each page (zeroing it; in a virtual machine, a fault
        // in the host too) took up to half of a derivation here. Argon2 runs on one
        // core; the other faults the pages in from the far end, and finds those
        // Argon2 reached first already there.
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let base = ptr as usize;
        let helper = std::thread::Builder::new()
            .name("kdf-memory".into())
            .spawn(move || {
                let mut end = len;
                while end > 0 && !flag.load(Ordering::Relaxed) {
                    // Huge-page aligned from the (page-aligned) start of the mapping.
                    let start = (end - 1) / HUGE * HUGE;
                    // SAFETY: a sub-range of the live mapping (Drop joins this
                    // thread before unmapping); populating writes no byte the
                    // program can see (a fresh page reads as zeros either way).
                    let r = unsafe {
                        libc::madvise(
                            (base + start) as *mut libc::c_void,
                            end - start,
                            libc::MADV_POPULATE_WRITE,
                        )
                    };
                    if r != 0 {
                        break; // before Linux 5.14: Argon2 faults them itself
                    }
                    end = start;
                }
            })
            .ok()
            .map(|h| (stop, h));
        Some(KdfMemory {
            ptr,
            len,
            blocks,
            helper,
        })
    }

    pub fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is `blocks` × 1 KiB, page-aligned (Block needs 64),
        // zero-filled by the kernel (all-zero words are a valid Block), and owned
        // by `self`, which the returned borrow keeps alive and exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<Block>(), self.blocks) }
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        if let Some((stop, h)) = self.helper.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = h.join();
        }
        // SAFETY: the mapping made in `new`, unmapped once; no borrow outlives self
        // and the helper thread has ended.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_what_argon2s_own_memory_derives() {
        let params = argon2::Params::new(8 * 1024, 2, 1, Some(32)).unwrap();
        let a = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
        let mut mem = KdfMemory::new(params.block_count()).unwrap();
        a.hash_password_into_with_memory(b"senha", b"sal-de-16-bytes!", &mut ours, mem.blocks())
            .unwrap();
        a.hash_password_into(b"senha", b"sal-de-16-bytes!", &mut theirs)
            .unwrap();
        assert_eq!(ours, theirs);
        assert!(KdfMemory::new(0).is_none());
    }
}
