//! Terraform: .tf (HCL) and .tf.json parsed into resources with evaluated attributes.
