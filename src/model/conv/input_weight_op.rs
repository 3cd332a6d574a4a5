//! The autodiff side shared by the CPU convolutions with handwritten backward passes
//! ([`super::winograd_train`], [`super::transpose_cpu`], [`super::gemm_train`]): each is an
//! [`InputWeightKernel`], a forward pass and the two gradients over plain buffers, and
//! [`differentiable`] registers it with burn's autodiff, keeping only its input and weight for
//! the backward pass.

use std::fmt::Debug;
use std::marker::PhantomData;

use burn::backend::Flex;
use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;

/// A CPU kernel of an input and a weight.
pub(super) trait InputWeightKernel: Debug + Send + 'static {
    /// Its settings that are not tensors (padding, stride).
    type Settings: Copy + Send + Debug + 'static;

    /// The output.
    fn forward(x: &FlexTensor, weight: &FlexTensor, settings: Self::Settings) -> FlexTensor;

    /// The gradients of the input (only when `want_dx`) and of the weight, given the output's
    /// `dy`. A kernel may skip the weight's when not `want_dw` (a frozen network, such as the
    /// discriminator in the generator's step, passes gradients to its input only).
    fn backward(
        x: &FlexTensor,
        weight: &FlexTensor,
        dy: &FlexTensor,
        settings: Self::Settings,
        want_dx: bool,
        want_dw: bool,
    ) -> (Option<FlexTensor>, Option<FlexTensor>);
}

/// `K`'s step of the backward pass.
#[derive(Debug)]
struct KernelBackward<K>(PhantomData<K>);

impl<K: InputWeightKernel> Backward<Flex, 2> for KernelBackward<K> {
    /// The input, the weight and the settings: everything else is recomputed.
    type State = (FlexTensor, FlexTensor, K::Settings);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x, weight, settings) = ops.state;
        let (dx, dw) = K::backward(
            &x,
            &weight,
            &dy,
            settings,
            node_x.is_some(),
            node_w.is_some(),
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

/// `K` on autodiff tensors: its forward pass, tracked when either operand is.
pub(super) fn differentiable<K: InputWeightKernel, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    weight: FloatTensor<Autodiff<Flex, C>>,
    settings: K::Settings,
) -> FloatTensor<Autodiff<Flex, C>> {
    match KernelBackward::<K>(PhantomData)
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (x, weight) = (x.into_primitive(), weight.into_primitive());
            let y = K::forward(&x, &weight, settings);
            prep.finish((x, weight, settings), y)
        }
        OpsKind::UnTracked(prep) => {
            prep.finish(K::forward(x.primitive(), weight.primitive(), settings))
        }
    }
}
