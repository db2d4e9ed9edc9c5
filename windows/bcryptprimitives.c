/* Wine-only stand-in for bcryptprimitives.dll (RECIPES.md §5, pitfall 3). NEVER SHIP IT: Windows has
 * the real DLL. Wine 8.0 lacks it, and cryptography >= 42 (_rust.pyd, Rust std's ProcessPrng) imports it.
 * windows/build.sh compiles it into the build's Wine prefix only:
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -lbcrypt */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
