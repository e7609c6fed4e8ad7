// simd_* collectives over the 32 lanes of a simdgroup. Each is one runtime collective: every
// active lane deposits its value, then each lane computes its result from the deposits.
// Inactive lanes (returned, or past the end of a partial simdgroup) take no part; reading one is
// reported as an error.
#pragma once
#include "common.h"

namespace metal {

struct __msl_gathered {
  const unsigned char* data;
  uint mask;
  uint lane;
  template <class T>
  T at(uint l) const {
    T r;
    __builtin_memcpy(&r, data + l * __MSL_SIMD_PAYLOAD, sizeof(T));
    return r;
  }
  bool active(uint l) const {
    return l < __MSL_SIMD_WIDTH && ((mask >> l) & 1u);
  }
  // Value of lane `src`, which must be active.
  template <class T>
  T read(uint src, const __msl_site& site) const {
    if (src >= __MSL_SIMD_WIDTH)
      __msl_rt_fail(
          &site, "%s: lane %u reads lane %u, which does not exist (simd width 32)", site.op, lane,
          src);
    if (!active(src))
      __msl_rt_fail(
          &site,
          "%s: lane %u reads lane %u, which is inactive (it has returned or was not launched)",
          site.op, lane, src);
    return at<T>(src);
  }
};

template <class T>
inline __msl_gathered __msl_gather(const T& value, const __msl_site& site) {
  static_assert(sizeof(T) <= __MSL_SIMD_PAYLOAD, "simd collective on a value larger than 64 bytes");
  __msl_gathered g;
  g.data = static_cast<const unsigned char*>(
      __msl_rt_simd_collective(&value, sizeof(T), &site, &g.mask, &g.lane));
  return g;
}

#define __MSL_SIMD_REDUCE(name, init, op)                   \
  template <class T>                                        \
  inline T name(T x, __msl_site site = __msl_here(#name)) { \
    __msl_gathered g = __msl_gather(x, site);               \
    T r = init;                                             \
    bool first = true;                                      \
    for (uint l = 0; l < __MSL_SIMD_WIDTH; ++l) {           \
      if (!g.active(l))                                     \
        continue;                                           \
      T v = g.at<T>(l);                                     \
      r = first ? v : (op);                                 \
      first = false;                                        \
    }                                                       \
    return r;                                               \
  }
__MSL_SIMD_REDUCE(simd_sum, T(0), r + v)
__MSL_SIMD_REDUCE(simd_product, T(1), r* v)
__MSL_SIMD_REDUCE(simd_max, T(0), max(r, v))
__MSL_SIMD_REDUCE(simd_min, T(0), min(r, v))
__MSL_SIMD_REDUCE(simd_and, T(0), r& v)
__MSL_SIMD_REDUCE(simd_or, T(0), r | v)
__MSL_SIMD_REDUCE(simd_xor, T(0), r ^ v)
#undef __MSL_SIMD_REDUCE

template <class T>
inline T simd_prefix_exclusive_sum(T x, __msl_site site = __msl_here("simd_prefix_exclusive_sum")) {
  __msl_gathered g = __msl_gather(x, site);
  T r = T(0);
  for (uint l = 0; l < g.lane; ++l)
    if (g.active(l))
      r += g.at<T>(l);
  return r;
}
template <class T>
inline T simd_prefix_inclusive_sum(T x, __msl_site site = __msl_here("simd_prefix_inclusive_sum")) {
  __msl_gathered g = __msl_gather(x, site);
  T r = T(0);
  for (uint l = 0; l <= g.lane; ++l)
    if (g.active(l))
      r += g.at<T>(l);
  return r;
}
template <class T>
inline T simd_prefix_exclusive_product(
    T x, __msl_site site = __msl_here("simd_prefix_exclusive_product")) {
  __msl_gathered g = __msl_gather(x, site);
  T r = T(1);
  for (uint l = 0; l < g.lane; ++l)
    if (g.active(l))
      r *= g.at<T>(l);
  return r;
}

template <class T>
inline T simd_shuffle(T x, ushort lane, __msl_site site = __msl_here("simd_shuffle")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.read<T>(lane, site);
}
template <class T>
inline T simd_broadcast(T x, ushort lane, __msl_site site = __msl_here("simd_broadcast")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.read<T>(lane, site);
}
// Lanes whose source lies outside 0..31 keep their own value (Apple's documented behaviour).
template <class T>
inline T simd_shuffle_down(T x, ushort delta, __msl_site site = __msl_here("simd_shuffle_down")) {
  __msl_gathered g = __msl_gather(x, site);
  uint src = g.lane + delta;
  return src >= __MSL_SIMD_WIDTH ? x : g.read<T>(src, site);
}
template <class T>
inline T simd_shuffle_up(T x, ushort delta, __msl_site site = __msl_here("simd_shuffle_up")) {
  __msl_gathered g = __msl_gather(x, site);
  return delta > g.lane ? x : g.read<T>(g.lane - delta, site);
}
template <class T>
inline T simd_shuffle_xor(T x, ushort mask, __msl_site site = __msl_here("simd_shuffle_xor")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.read<T>(g.lane ^ mask, site);
}
template <class T>
inline T simd_shuffle_rotate_down(
    T x, ushort delta, __msl_site site = __msl_here("simd_shuffle_rotate_down")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.read<T>((g.lane + delta) % __MSL_SIMD_WIDTH, site);
}
template <class T>
inline T simd_shuffle_rotate_up(
    T x, ushort delta, __msl_site site = __msl_here("simd_shuffle_rotate_up")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.read<T>((g.lane + __MSL_SIMD_WIDTH - delta % __MSL_SIMD_WIDTH) % __MSL_SIMD_WIDTH, site);
}
template <class T>
inline T simd_broadcast_first(T x, __msl_site site = __msl_here("simd_broadcast_first")) {
  __msl_gathered g = __msl_gather(x, site);
  return g.at<T>(uint(__builtin_ctz(g.mask)));
}

class simd_vote {
 public:
  typedef ulong vote_t;
  constexpr explicit simd_vote(vote_t v = 0) : v_(v) {}
  constexpr explicit operator vote_t() const {
    return v_;
  }
  constexpr bool all() const {
    return v_ == 0xffffffffull;
  }
  constexpr bool any() const {
    return v_ != 0;
  }

 private:
  vote_t v_;
};

inline simd_vote simd_ballot(bool pred, __msl_site site = __msl_here("simd_ballot")) {
  __msl_gathered g = __msl_gather(pred, site);
  ulong bits = 0;
  for (uint l = 0; l < __MSL_SIMD_WIDTH; ++l)
    if (g.active(l) && g.at<bool>(l))
      bits |= 1ull << l;
  return simd_vote(bits);
}
inline simd_vote simd_active_threads_mask(
    __msl_site site = __msl_here("simd_active_threads_mask")) {
  __msl_gathered g = __msl_gather(true, site);
  return simd_vote(g.mask);
}
inline bool simd_all(bool pred, __msl_site site = __msl_here("simd_all")) {
  __msl_gathered g = __msl_gather(pred, site);
  for (uint l = 0; l < __MSL_SIMD_WIDTH; ++l)
    if (g.active(l) && !g.at<bool>(l))
      return false;
  return true;
}
inline bool simd_any(bool pred, __msl_site site = __msl_here("simd_any")) {
  __msl_gathered g = __msl_gather(pred, site);
  for (uint l = 0; l < __MSL_SIMD_WIDTH; ++l)
    if (g.active(l) && g.at<bool>(l))
      return true;
  return false;
}
inline bool simd_is_first(__msl_site site = __msl_here("simd_is_first")) {
  __msl_gathered g = __msl_gather(true, site);
  return g.lane == uint(__builtin_ctz(g.mask));
}

} // namespace metal
