/* Thread functions for the Debian route of scripts/lib/wasm-build. Rust's standard library for
 * wasm32-wasip2 links pthread_* symbols that newer wasi-libc releases provide as stubs for
 * their single-threaded targets; Debian's wasi-libc (2022) predates them. A component has one
 * thread, so starting one fails, as it does with the newer stubs. Pointer and size arguments
 * are all i32 on wasm32, which keeps these signatures the libc's. */
int pthread_attr_init(void *attr) { (void)attr; return 0; }
int pthread_attr_destroy(void *attr) { (void)attr; return 0; }
int pthread_attr_setstacksize(void *attr, unsigned long size) { (void)attr; (void)size; return 0; }
/* WASI errno values: EAGAIN is 6, EINVAL is 28. */
int pthread_create(void *thread, const void *attr, void *(*start)(void *), void *arg) {
    (void)thread; (void)attr; (void)start; (void)arg; return 6;
}
int pthread_join(unsigned long thread, void **result) { (void)thread; (void)result; return 28; }
int pthread_detach(unsigned long thread) { (void)thread; return 28; }
