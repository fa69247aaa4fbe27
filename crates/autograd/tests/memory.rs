//! Graph memory over many steps. Alone in its own test binary: `live_nodes` counts every node
//! in the process, so tests running beside it on other threads would disturb the count.

use strata_autograd::{live_nodes, Var};
use strata_tensor::Generator;

#[test]
fn graph_nodes_are_freed_over_many_steps() {
    let mut gen = Generator::new(0);
    let w = Var::parameter(gen.randn::<f64>(&[8, 4]));
    let x = Var::new(gen.randn::<f64>(&[16, 8]));
    let step = || {
        let loss = x.matmul(&w).unwrap().tanh().square().mean_all();
        loss.backward().unwrap();
        w.zero_grad();
    };
    step();
    let baseline = live_nodes();

    for _ in 0..10_000 {
        step();
    }

    assert_eq!(live_nodes(), baseline, "graph nodes leaked across steps");
}
