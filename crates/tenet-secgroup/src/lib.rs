//! Security groups: exposure analysis of EC2 security groups from AWS JSON and Terraform.
