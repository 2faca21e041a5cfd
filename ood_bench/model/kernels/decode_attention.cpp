// One decode step's attention for every row and head in one call (ood_bench/model/kernels/__init__.py builds it).
//
// Each of the N rows has one new query per head. It attends to its prompt's keys, whose scores the
// caller has already computed per prompt in one batched matmul (s_pre: (P, H, n, Tp), row r is prompt
// r / n, sample r % n, unscaled), and to the t keys it decoded itself (k, v: (N, H, t, hd)). Per row and
// head this is a few hundred multiply-adds: done here in a plain loop instead of one tiny matmul each,
// which is where eager PyTorch spends its time (~100-180 ns of dispatch per product).
//
// Returns the softmax weights of the prompt keys, (P, H, n, Tp), laid out for the caller's batched
// w_pre @ prompt_values, and the own keys' share of the output, (N, H, hd). Without a prompt (Tp = 0,
// after the batch was compacted) ``key_mask`` (N, t) marks which of the row's keys are real.
//
// The arithmetic is eager's: scores = (q . k) * scale, masked keys -inf, max-subtracted exp, weights
// = exp / sum. Only the order of the sums differs (float rounding), and exp is the polynomial below.

// ATen and the tensor <-> Python conversions only, not <torch/extension.h> (the whole C++ frontend): the
// first-use build takes half the time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

// exp(x) for x <= 0 (scores minus their max), as straight-line float arithmetic that the compiler turns
// into vector instructions: std::exp is a library call per element and stays scalar. x = k ln2 + r with
// |r| <= ln2/2; exp(r) by its degree-6 Taylor polynomial (at most 2.5e-7 relative error over [-87, 0],
// median 2.4e-8: a couple of float roundings); 2^k put into the exponent bits.
// Inputs below -87 count as -87 (exp = 1.6e-38, which keeps 2^k a normal float): next to the maximum's
// weight of 1 no sum can tell the difference.
inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;  // also a masked key's -inf, computed by the vector code and then given 0
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;  // ln2 split so k * ln2_hi is exact
    float kf = std::nearbyint(x * log2e);
    float r = x - kf * ln2_hi - kf * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = (static_cast<int32_t>(kf) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// What every (row, head) pair reads and writes; see decode_attention below.
struct Problem {
    const float *q, *k, *v, *s_pre;
    const bool *prompt_mask, *key_mask;  // key_mask may be null: every own key is real
    float *w_pre, *y;
    int64_t H, hd, t, n, Tp;
    int64_t qs0, qs1, ks0, ks1, ks2, vs0, vs1, vs2;
    float scale;
};

// Pairs [begin, end) of the N*H (row, head) pairs. ``HD`` is the head size when it is one of the
// common ones, so the loops over it have a fixed trip count the compiler unrolls and keeps in
// registers; 0 reads it from ``pr.hd``.
template <int HD>
void attend_pairs(const Problem& pr, int64_t begin, int64_t end) {
    const int64_t hd = HD > 0 ? HD : pr.hd, H = pr.H, t = pr.t, n = pr.n, Tp = pr.Tp;
    const float scale = pr.scale;
    const float neg_inf = -std::numeric_limits<float>::infinity();
    std::vector<float> s(Tp + t), acc(hd);  // the pair's scores, then its unnormalised weights; its output
    float* sv = s.data();
    float* ya = acc.data();
    for (int64_t i = begin; i < end; ++i) {
        const int64_t r = i / H, h = i % H, p = r / n, j = r % n;
        const float* qv = pr.q + r * pr.qs0 + h * pr.qs1;
        const float* kb = pr.k + r * pr.ks0 + h * pr.ks1;
        const float* vb = pr.v + r * pr.vs0 + h * pr.vs1;
        const float* pre = pr.s_pre + ((p * H + h) * n + j) * Tp;
        const bool* pm = pr.prompt_mask + p * Tp;
        const bool* km = pr.key_mask ? pr.key_mask + r * t : nullptr;

        for (int64_t a = 0; a < Tp; ++a) sv[a] = pm[a] ? pre[a] * scale : neg_inf;
        for (int64_t b = 0; b < t; ++b) {
            const float* kv = kb + b * pr.ks2;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < hd; ++d) dot += qv[d] * kv[d];
            sv[Tp + b] = (km == nullptr || km[b]) ? dot * scale : neg_inf;
        }

        float m = neg_inf;
#pragma omp simd reduction(max : m)
        for (int64_t a = 0; a < Tp + t; ++a) m = sv[a] > m ? sv[a] : m;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t a = 0; a < Tp + t; ++a) {
            // a masked key (-inf) weighs exactly 0, as in eager's softmax
            const float e = sv[a] == neg_inf ? 0.0f : exp_nonpositive(sv[a] - m);
            sv[a] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;

        float* wo = pr.w_pre + ((p * H + h) * n + j) * Tp;
#pragma omp simd
        for (int64_t a = 0; a < Tp; ++a) wo[a] = sv[a] * inv;

        for (int64_t d = 0; d < hd; ++d) ya[d] = 0.0f;
        for (int64_t b = 0; b < t; ++b) {
            const float w = sv[Tp + b] * inv;
            const float* vv = vb + b * pr.vs2;
#pragma omp simd
            for (int64_t d = 0; d < hd; ++d) ya[d] += w * vv[d];
        }
        float* yo = pr.y + (r * H + h) * hd;
        for (int64_t d = 0; d < hd; ++d) yo[d] = ya[d];
    }
}

}  // namespace

std::vector<at::Tensor> decode_attention(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                                         const at::Tensor& s_pre_in, const at::Tensor& prompt_mask_in, double scale,
                                         const c10::optional<at::Tensor>& key_mask_in) {
    TORCH_CHECK(q_in.scalar_type() == at::kFloat && k_in.scalar_type() == at::kFloat &&
                v_in.scalar_type() == at::kFloat && s_pre_in.scalar_type() == at::kFloat,
                "decode_attention: float32 only");
    TORCH_CHECK(q_in.dim() == 3 && k_in.dim() == 4 && v_in.dim() == 4 && s_pre_in.dim() == 4,
                "decode_attention: q (N,H,hd), k and v (N,H,t,hd), s_pre (P,H,n,Tp)");
    // The cache slices are strided along rows and keys but dense along hd; the loops read any row, head
    // and key stride and need only the innermost one to be 1.
    auto dense_last = [](const at::Tensor& x) { return x.stride(-1) == 1 ? x : x.contiguous(); };
    const at::Tensor q = dense_last(q_in), k = dense_last(k_in), v = dense_last(v_in);
    const at::Tensor s_pre = s_pre_in.contiguous();
    const at::Tensor prompt_mask = prompt_mask_in.to(at::kBool).contiguous();
    const int64_t N = q.size(0), H = q.size(1), hd = q.size(2), t = k.size(2);
    const int64_t P = s_pre.size(0), n = s_pre.size(2), Tp = s_pre.size(3);
    TORCH_CHECK(k.size(0) == N && k.size(1) == H && k.size(3) == hd && v.sizes() == k.sizes(),
                "decode_attention: k and v must be (N,H,t,hd) matching q");
    TORCH_CHECK(P * n == N && s_pre.size(1) == H, "decode_attention: s_pre must be (P,H,n,Tp) with P*n = N");
    TORCH_CHECK(prompt_mask.dim() == 2 && prompt_mask.size(0) == P && prompt_mask.size(1) == Tp,
                "decode_attention: prompt_mask must be (P,Tp)");
    at::Tensor key_mask;
    if (key_mask_in.has_value()) {
        key_mask = key_mask_in->to(at::kBool).contiguous();
        TORCH_CHECK(key_mask.dim() == 2 && key_mask.size(0) == N && key_mask.size(1) == t,
                    "decode_attention: key_mask must be (N,t)");
    }
    at::Tensor w_pre = at::empty({P, H, n, Tp}, q.options());
    at::Tensor y = at::empty({N, H, hd}, q.options());

    const Problem pr{q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), s_pre.data_ptr<float>(),
                     prompt_mask.data_ptr<bool>(), key_mask.defined() ? key_mask.data_ptr<bool>() : nullptr,
                     w_pre.data_ptr<float>(), y.data_ptr<float>(), H, hd, t, n, Tp,
                     q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2),
                     v.stride(0), v.stride(1), v.stride(2), static_cast<float>(scale)};
    // A few dozen pairs per chunk keep the threads' scheduling cost small next to the work (each pair
    // is ~(Tp + 4t) hd flops).
    at::parallel_for(0, N * H, 32, [&](int64_t begin, int64_t end) {
        switch (hd) {
            case 16: attend_pairs<16>(pr, begin, end); break;
            case 32: attend_pairs<32>(pr, begin, end); break;
            case 64: attend_pairs<64>(pr, begin, end); break;
            default: attend_pairs<0>(pr, begin, end);
        }
    });
    return {w_pre, y};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("decode_attention", &decode_attention, "one decode step's attention, all rows and heads",
          py::arg("q"), py::arg("k"), py::arg("v"), py::arg("s_pre"), py::arg("prompt_mask"),
          py::arg("scale"), py::arg("key_mask") = py::none());
}
