fn main() {
    println!("meshid");
}
