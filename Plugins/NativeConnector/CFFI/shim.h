/* libffi for the native connector. Its type descriptors are global variables, which Swift 6
 * may not touch as such: these return their addresses. */
#include <ffi.h>
#include <dlfcn.h>

static inline ffi_type *cffi_void(void) { return &ffi_type_void; }
static inline ffi_type *cffi_uint8(void) { return &ffi_type_uint8; }
static inline ffi_type *cffi_sint8(void) { return &ffi_type_sint8; }
static inline ffi_type *cffi_uint16(void) { return &ffi_type_uint16; }
static inline ffi_type *cffi_sint16(void) { return &ffi_type_sint16; }
static inline ffi_type *cffi_uint32(void) { return &ffi_type_uint32; }
static inline ffi_type *cffi_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *cffi_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *cffi_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *cffi_double(void) { return &ffi_type_double; }
static inline ffi_type *cffi_pointer(void) { return &ffi_type_pointer; }
static inline ffi_abi cffi_default_abi(void) { return FFI_DEFAULT_ABI; }
static inline int cffi_ok(ffi_status s) { return s == FFI_OK; }
