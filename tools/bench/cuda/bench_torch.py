"""PyTorch references for tools/bench/cuda (same GPU, same run): SDPA on the augmented SISA
tensors (d_qk 80, d_v 64) and the Transformer's (64/64), per backend; bf16 matmul at the 152M
shapes; device-to-device copy bandwidth and a large bf16 GEMM as the two ceilings (METHOD.md)."""
import torch, torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend

def bench(fn, reps=30):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    ts.sort(); return ts[len(ts) // 2]

dev = 'cuda'
print('torch', torch.__version__, torch.cuda.get_device_name(), 'cudnn', torch.backends.cudnn.version())
B, H, T = 8, 12, 4096
CASES = [('SISA 80/64 T4096', 80, 4096), ('SISA 96/64 T4096', 96, 4096), ('Transformer 64/64 T4096', 64, 4096),
         ('SISA 80/64 T2048', 80, 2048), ('SISA 96/64 T2048', 96, 2048), ('Transformer 64/64 T2048', 64, 2048)]
for name, dqk, T in CASES:
    q = torch.randn(B, H, T, dqk, device=dev, dtype=torch.bfloat16)
    k = torch.randn(B, H, T, dqk, device=dev, dtype=torch.bfloat16)
    v = torch.randn(B, H, T, 64, device=dev, dtype=torch.bfloat16)
    flop = 2 * B * H * T * T / 2 * (dqk + 64)
    for be in [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]:
        try:
            with sdpa_kernel([be]):
                ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.125))
            print(f'torch SDPA {name:24s} {str(be):32s} {ms:8.3f} ms {flop / ms / 1e9:7.1f} TFLOP/s')
        except Exception as ex:
            print(f'torch SDPA {name:24s} {str(be):32s} refused: {str(ex).splitlines()[0][:80]}')
M = 8 * 2048
for name, N, K in [('ceiling 8192^3', 8192, 8192), ('W_Q', 768, 768), ]:
    m = 8192 if N == 8192 else M
    a = torch.randn(m, K, device=dev, dtype=torch.bfloat16); w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    ms = bench(lambda: a @ w.t())
    print(f'torch matmul {name:16s} {m}x{N}x{K} bf16 {ms:8.3f} ms {2 * m * N * K / ms / 1e9:7.1f} TFLOP/s')
x = torch.empty(1 << 30, device=dev, dtype=torch.uint8); y = torch.empty_like(x)
ms = bench(lambda: y.copy_(x))
print(f'copy 1 GiB d2d {ms:.3f} ms = {2 * (1 << 30) / ms / 1e6:.0f} GB/s (read+write)')
