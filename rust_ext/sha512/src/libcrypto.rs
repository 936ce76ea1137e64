//! The system's OpenSSL 3 libcrypto, loaded at run time, for SHA-512 and nothing else.
//!
//! This is the only module of the project with unsafe code: six C functions called through
//! `dlopen`. What makes it sound:
//! - every function pointer is resolved by name from the one library handle, which lives in
//!   a `static` for the rest of the process (never unloaded), with the signature OpenSSL 3's
//!   headers give it;
//! - the `EVP_MD` fetched once is immutable and reference-counted; OpenSSL documents fetched
//!   algorithm objects as shareable between threads;
//! - a digest context is owned by exactly one `Ctx`, created, used and freed through it, and
//!   never shared between threads (`Ctx` holds a raw pointer, so it is neither `Send` nor
//!   `Sync`);
//! - buffers are passed with their exact lengths; the output buffer is 64 bytes, SHA-512's
//!   length, and the length OpenSSL reports is checked.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::ptr::NonNull;

/// The soname of OpenSSL 3 on every Linux distribution we support.
const SONAME: &str = "libcrypto.so.3";

type CtxNew = unsafe extern "C" fn() -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type MdFetch = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> *mut c_void;
type DigestInit = unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void) -> c_int;
type DigestUpdate = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> c_int;
type DigestFinal = unsafe extern "C" fn(*mut c_void, *mut u8, *mut c_uint) -> c_int;
type VersionNum = unsafe extern "C" fn() -> c_ulong;
type VersionText = unsafe extern "C" fn(c_int) -> *const c_char;

/// A fetched `EVP_MD` (SHA-512 from the default provider).
struct Md(NonNull<c_void>);

// SAFETY: a fetched EVP_MD is immutable after `EVP_MD_fetch` returns and OpenSSL 3 documents
// such algorithm objects as safe to use from several threads at once; it is never freed.
unsafe impl Send for Md {}
// SAFETY: see `Send`: shared read-only use is what OpenSSL documents as thread-safe.
unsafe impl Sync for Md {}

/// The library and the functions we call in it.
pub(crate) struct LibCrypto {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    init: DigestInit,
    update: DigestUpdate,
    finish: DigestFinal,
    sha512: Md,
    /// `OpenSSL_version(OPENSSL_VERSION)`, e.g. "OpenSSL 3.5.1 1 Jul 2025".
    pub version: String,
    /// Keeps the library mapped; the `static` that owns `LibCrypto` is never dropped.
    _library: libloading::Library,
}

impl LibCrypto {
    /// Load OpenSSL 3 and fetch its SHA-512, or say why not.
    pub fn load() -> Result<LibCrypto, String> {
        // SAFETY: loading runs the library's initialisers; libcrypto's are the ones every
        // Python with `hashlib` or `ssl` has already run in this process.
        let library = unsafe { libloading::Library::new(SONAME) }
            .map_err(|e| format!("{SONAME} not loadable ({e})"))?;
        // SAFETY (all `symbol` calls): the types are the prototypes of OpenSSL 3's headers.
        let version_num: VersionNum = unsafe { symbol(&library, b"OpenSSL_version_num\0")? };
        let version_text: VersionText = unsafe { symbol(&library, b"OpenSSL_version\0")? };
        // SAFETY: takes no arguments and returns a number.
        let number = unsafe { version_num() };
        if number < 0x3000_0000 {
            return Err(format!(
                "{SONAME} reports version {number:#x}, not OpenSSL 3"
            ));
        }
        // SAFETY: OPENSSL_VERSION (0) returns a static NUL-terminated string.
        let text = unsafe { version_text(0) };
        let version = if text.is_null() {
            format!("OpenSSL {number:#x}")
        } else {
            // SAFETY: non-null, static, NUL-terminated (OpenSSL's contract for this call).
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        let fetch: MdFetch = unsafe { symbol(&library, b"EVP_MD_fetch\0")? };
        // SAFETY: NULL library context = the default one; the name is NUL-terminated; NULL
        // properties = any implementation.
        let md = unsafe { fetch(std::ptr::null_mut(), c"SHA512".as_ptr(), std::ptr::null()) };
        let sha512 = NonNull::new(md)
            .map(Md)
            .ok_or_else(|| format!("{version} has no SHA-512 in its default provider"))?;
        Ok(LibCrypto {
            ctx_new: unsafe { symbol(&library, b"EVP_MD_CTX_new\0")? },
            ctx_free: unsafe { symbol(&library, b"EVP_MD_CTX_free\0")? },
            init: unsafe { symbol(&library, b"EVP_DigestInit_ex\0")? },
            update: unsafe { symbol(&library, b"EVP_DigestUpdate\0")? },
            finish: unsafe { symbol(&library, b"EVP_DigestFinal_ex\0")? },
            sha512,
            version,
            _library: library,
        })
    }
}

/// Resolve `name` (NUL-terminated) as a function of type `T`.
///
/// # Safety
/// `T` must be the function's real C prototype.
unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &[u8]) -> Result<T, String> {
    // SAFETY: the caller gives the right prototype; the pointer is used only while the
    // library stays loaded (it is owned by a never-dropped static).
    unsafe { library.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| format!("{SONAME} lacks a function ({e})"))
}

/// One SHA-512 computation in progress (an `EVP_MD_CTX`).
pub(crate) struct Ctx<'a> {
    ptr: NonNull<c_void>,
    lib: &'a LibCrypto,
}

impl<'a> Ctx<'a> {
    /// A context initialised for SHA-512, or `None` if OpenSSL could not make one.
    pub fn new(lib: &'a LibCrypto) -> Option<Ctx<'a>> {
        // SAFETY: takes no arguments; returns NULL on allocation failure.
        let ptr = NonNull::new(unsafe { (lib.ctx_new)() })?;
        let ctx = Ctx { ptr, lib };
        // SAFETY: a fresh context, the fetched SHA-512, no engine.
        let ok = unsafe {
            (lib.init)(
                ctx.ptr.as_ptr(),
                lib.sha512.0.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        (ok == 1).then_some(ctx)
    }

    /// Hash more bytes; false if OpenSSL refused (it does not for an initialised SHA-512).
    pub fn update(&mut self, data: &[u8]) -> bool {
        // SAFETY: our own initialised context; `data` is valid for `data.len()` bytes.
        unsafe { (self.lib.update)(self.ptr.as_ptr(), data.as_ptr().cast(), data.len()) == 1 }
    }

    /// The digest, or `None` if OpenSSL refused.
    pub fn finish(self, out: &mut [u8; 64]) -> Option<()> {
        let mut len: c_uint = 0;
        // SAFETY: our own context; `out` has room for SHA-512's 64 bytes.
        let ok = unsafe { (self.lib.finish)(self.ptr.as_ptr(), out.as_mut_ptr(), &mut len) };
        (ok == 1 && len == 64).then_some(())
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        // SAFETY: the context was made by `EVP_MD_CTX_new` and is freed exactly once, here.
        unsafe { (self.lib.ctx_free)(self.ptr.as_ptr()) }
    }
}
