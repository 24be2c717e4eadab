"""terra_dyn's C module must not break other co_extra users, such as torch.compile."""
import subprocess
import sys
import textwrap


def test_torch_compile_after_importing_the_hook_does_not_crash():
    # CPython 3.11 calls every co_extra free function for every slot (gh-122491), so our
    # free function sees NULL for code objects that only torch.compile annotated.
    program = textwrap.dedent("""
        import gc, torch, terra_dyn, terra_dyn._C
        def f(x):
            return torch.relu(x) + 1
        x = torch.randn(4)
        fast = terra_dyn.optimize(f, backend="interpreter")
        assert torch.equal(fast(x), f(x))
        compiled = torch.compile(f, backend="eager")
        assert torch.equal(compiled(x), f(x))
        del compiled
        torch._dynamo.reset()
        gc.collect()
        assert torch.equal(fast(x), f(x))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip().endswith("ok")
