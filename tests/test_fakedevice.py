"""The simulated CUDA device: device bugs confirmable on a CPU-only machine."""

from __future__ import annotations

import copy
import mmap
import os

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from torchlint.runtime.fakedevice import device_of, is_simulating, simulate_device  # noqa: E402

# Real torch on a simulated GPU: the full run, not the inner loop.
pytestmark = pytest.mark.slow

SAME_DEVICE = "Expected all tensors to be on the same device"
CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


class LeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])


@pytest.fixture
def model():
    torch.manual_seed(0)
    return LeNet()


def test_cuda_model_fed_a_cpu_batch_raises_like_a_gpu(model, batch):
    x, _ = batch
    with simulate_device("cuda"):
        model.to("cuda")
        with pytest.raises(RuntimeError) as conv_error:
            model(x)
        dense = mlp().to("cuda")
        with pytest.raises(RuntimeError) as linear_error:
            dense(x)
    # A conv layer first: cuDNN/oneDNN's input-type check, as on a GPU.
    assert str(conv_error.value) == (
        "Input type (torch.FloatTensor) and weight type (torch.cuda.FloatTensor) should be the same "
        "or input should be a MKLDNN tensor and weight is a dense tensor"
    )
    # A linear layer first: the generated device check of the CUDA addmm kernel.
    assert str(linear_error.value) == (
        f"{SAME_DEVICE}, but got mat1 is on cpu, different from other tensors on cuda:0 "
        "(when checking argument in method wrapper_CUDA_addmm)"
    )


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda x, device: x.to("cuda"), id="to-string"),
        pytest.param(lambda x, device: x.cuda(), id="cuda"),
        pytest.param(lambda x, device: x.to(device, non_blocking=True), id="to-device-non-blocking"),
        pytest.param(lambda x, device: x.to(torch.zeros(1, device=device)), id="to-other-tensor"),
    ],
)
def test_moved_batch_gives_the_cpu_numbers(model, batch, move):
    x, _ = batch
    expected = model(x)
    with simulate_device("cuda"):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        moved = move(x, device)
        out = model(moved)
        assert out.device == CUDA and out.is_cuda
        assert moved.device == CUDA
        assert x.device == CPU  # the original stays where it was
        result = out.detach().cpu()
    assert device_of(result) == CPU
    assert torch.equal(result, expected.detach())


def test_tensor_created_with_device_argument(model):
    torch.manual_seed(1)
    expected = model(torch.randn(2, 1, 28, 28))
    with simulate_device("cuda"):
        model.cuda()
        torch.manual_seed(1)
        x = torch.randn(2, 1, 28, 28, device="cuda")
        assert device_of(x) == CUDA
        out = model(x)
        assert torch.equal(out.cpu(), expected)
        assert device_of(torch.zeros_like(x)) == CUDA  # *_like follows its input
        assert device_of(x.new_tensor([1.0])) == CUDA  # new_* follows self
        assert device_of(torch.arange(3, device=x.device)) == CUDA


def test_loss_between_cuda_output_and_cpu_labels(model, batch):
    x, y = batch
    with simulate_device("cuda"):
        model.to("cuda")
        out = model(x.to("cuda"))
        with pytest.raises(RuntimeError) as nll:
            F.cross_entropy(out, y)
        with pytest.raises(RuntimeError) as mse:
            F.mse_loss(out, torch.zeros(4, 10))
        with pytest.raises(RuntimeError) as accuracy:
            (out.argmax(1) == y).sum()
        loss = F.cross_entropy(out, y.to("cuda"))
        assert loss.device == CUDA
    assert str(nll.value) == (
        f"{SAME_DEVICE}, but got target is on cpu, different from other tensors on cuda:0 "
        "(when checking argument in method wrapper_CUDA_nll_loss_forward)"
    )
    expected = f"{SAME_DEVICE}, but found at least two devices, cuda:0 and cpu!"
    assert str(mse.value) == expected
    assert str(accuracy.value) == expected


def test_cpu_and_item_paths(model, batch):
    x, y = batch
    with simulate_device("cuda"):
        model.to("cuda")
        out = model(x.cuda())
        loss = F.cross_entropy(out, y.cuda())
        assert isinstance(loss.item(), float)
        assert out.argmax(1).tolist() == out.cpu().argmax(1).tolist()
        # Back on the CPU, mixing with CPU tensors is fine again.
        correct = (out.cpu().argmax(1) == y).sum().item()
        assert 0 <= correct <= 4
        with pytest.raises(TypeError, match=r"can't convert cuda:0 device type tensor to numpy"):
            out.detach().numpy()
        assert out.detach().cpu().numpy().shape == (4, 10)
        # CPU scalars may meet CUDA tensors, as on a GPU.
        assert device_of(out * torch.tensor(2.0)) == CUDA
        assert out.cpu().cpu().device == CPU


def test_parameters_keep_their_tag_through_module_apply(model):
    params = {name: id(p) for name, p in model.named_parameters()}
    net = nn.Sequential(model, nn.BatchNorm1d(10))
    with simulate_device("cuda"):
        net.to(torch.device("cuda"))
        assert {name: id(p) for name, p in model.named_parameters()} == params  # same objects
        for tensor in [*net.parameters(), *net.buffers()]:
            assert tensor.device == CUDA, tensor.shape
        assert all(isinstance(p, nn.Parameter) for p in net.parameters())
        assert model.fc1.weight.data.device == CUDA
        assert model.fc1.weight.detach().device == CUDA
        clone = copy.deepcopy(model)
        assert clone.fc1.weight.device == CUDA
        net.cpu()
        assert all(p.device == CPU for p in net.parameters())


def test_training_step_matches_cpu(batch):
    x, y = batch

    def train(device: str | None):
        torch.manual_seed(0)
        net = LeNet()
        if device:
            net.to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            inputs, labels = (x.to(device), y.to(device)) if device else (x, y)
            loss = F.cross_entropy(net(inputs), labels)
            loss.backward()
            optimizer.step()
        return net

    reference = train(None)
    with simulate_device("cuda"):
        simulated = train("cuda")
        assert simulated.fc1.weight.grad.device == CUDA
        weights = [p.detach().cpu() for p in simulated.parameters()]
    for got, want in zip(weights, reference.parameters()):
        torch.testing.assert_close(got, want.detach())


def test_cuda_module_state_is_simulated_and_restored():
    real_available = torch.cuda.is_available
    assert not is_simulating()
    with simulate_device("cuda", device_count=2) as sim:
        assert is_simulating()
        assert torch.cuda.is_available() and torch.cuda.device_count() == 2
        a = torch.ones(2).to("cuda:0")
        b = torch.ones(2).to("cuda:1")
        assert b.get_device() == 1 and torch.ones(1).get_device() == -1
        with pytest.raises(RuntimeError, match=r"found at least two devices, cuda:0 and cuda:1!"):
            a + b
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            torch.ones(1).to("cuda:2")
        assert sim.device_of(a) == CUDA
        assert nn.Linear(2, 2).to(0).weight.device == CUDA  # an int is a CUDA ordinal
        assert torch.ones(2).cuda().type() == "torch.cuda.FloatTensor"
        assert torch.ones(2).type("torch.cuda.DoubleTensor").device == CUDA
        assert "device='cuda:0'" in repr(a)
        torch.cuda.set_device(1)
        assert torch.ones(1).cuda().device == torch.device("cuda", 1)
    assert torch.cuda.is_available is real_available
    assert not is_simulating()
    # Tags survive the block but nothing is checked any more.
    assert device_of(a) == CUDA
    assert torch.equal(a + torch.ones(2), torch.full((2,), 2.0))


def test_embedding_indexing_and_concatenation():
    with simulate_device("cuda"):
        embedding = nn.Embedding(10, 3).cuda()
        with pytest.raises(RuntimeError) as error:
            embedding(torch.tensor([1, 2]))
        assert str(error.value) == (
            f"{SAME_DEVICE}, but got index is on cpu, different from other tensors on cuda:0 "
            "(when checking argument in method wrapper_CUDA__index_select)"
        )
        assert embedding(torch.tensor([1, 2]).cuda()).device == CUDA
        values = torch.arange(6.0).cuda()
        assert values[torch.tensor([0, 5])].tolist() == [0.0, 5.0]  # CPU indices are fine
        with pytest.raises(RuntimeError, match=r"indices should be either on cpu or on the same device"):
            torch.arange(6.0)[torch.tensor([0]).cuda()]
        with pytest.raises(RuntimeError, match=r"but got tensors is on cpu.*wrapper_CUDA_cat"):
            torch.cat([values, torch.zeros(1)])


def test_recurrent_layers():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    expected, _ = lstm(x)
    with simulate_device("cuda"):
        lstm.cuda()
        with pytest.raises(RuntimeError) as cpu_input:
            lstm(x)
        # The char-RNN classic: the initial hidden state made on the CPU.
        hidden = (torch.zeros(1, 2, 4).cuda(), torch.zeros(1, 2, 4))
        with pytest.raises(RuntimeError) as cpu_state:
            lstm(x.cuda(), hidden)
        out, (h, c) = lstm(x.cuda(), tuple(t.cuda() for t in hidden))
        assert out.device == h.device == c.device == CUDA
        torch.testing.assert_close(out.cpu(), expected)
        pack = nn.utils.rnn.pack_padded_sequence
        with pytest.raises(RuntimeError) as cuda_lengths:
            pack(x.cuda(), torch.tensor([5, 3]).cuda())
        packed = pack(x.cuda(), torch.tensor([5, 3]))
        assert packed.data.device == CUDA and packed.batch_sizes.device == CPU
        assert lstm(packed)[0].data.device == CUDA
    assert str(cuda_lengths.value) == (
        "'lengths' argument should be a 1D CPU int64 tensor, but got 1D cuda:0 Long tensor"
    )
    assert str(cpu_input.value) == (
        "Input and parameter tensors are not at the same device, found input tensor at cpu "
        "and parameter tensor at cuda:0"
    )
    assert str(cpu_state.value) == (
        f"{SAME_DEVICE}, but got cx is on cpu, different from other tensors on cuda:0 "
        "(when checking argument in method wrapper_CUDA___cudnn_rnn)"
    )


def test_set_default_device_inside_the_simulation():
    with simulate_device("cuda"):
        torch.set_default_device("cuda")
        try:
            layer = nn.Linear(2, 3)
            x = torch.randn(4, 2)
            assert layer.weight.device == x.device == CUDA
            assert layer(x).device == CUDA
            with pytest.raises(RuntimeError, match=SAME_DEVICE):
                torch.stack([x, torch.from_numpy(x.cpu().numpy())])
        finally:
            torch.set_default_device(None)
        assert torch.randn(2).device == CPU


def test_attention_internals_follow_their_inputs():
    # F.multi_head_attention_forward builds masks in Python from q.device.
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(8, 2)
    q = torch.randn(3, 2, 8)
    expected, _ = attention(q, q, q)
    with simulate_device("cuda"):
        attention.cuda()
        out, _ = attention(q.cuda(), q.cuda(), q.cuda(), need_weights=False)
        assert out.device == CUDA
        torch.testing.assert_close(out.cpu(), expected)


def test_messages_exist_in_the_installed_torch():
    """Our wording must be what this torch build would print on a GPU."""
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    if not os.path.exists(library):
        pytest.skip("no libtorch_cpu.so to compare with")
    fragments = [
        b"Expected all tensors to be on the same device, but found at least two devices, ",
        b"Expected all tensors to be on the same device, but got ",
        b", different from other tensors on ",
        b" (when checking argument in method ",
        b") should be the same or input should be a MKLDNN tensor and weight is a dense tensor",
        b"indices should be either on ",
        b" or on the same device as the indexed tensor (",
        b"only dense CPU tensors can be pinned",
        b" tensors are not at the same device, found input tensor at ",
        b"'lengths' argument should be a 1D CPU int64 tensor, but got ",
    ]
    with open(library, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        missing = [f for f in fragments if data.find(f) < 0]
    assert not missing
