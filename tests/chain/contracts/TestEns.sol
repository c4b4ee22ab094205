// SPDX-License-Identifier: MIT
// A minimal ENS for the test suite: a registry of node owners and resolvers (the root owned
// by the deployer), and a resolver holding address and name records, written by the owner
// of each node as the registry says.
pragma solidity ^0.8.20;

contract TestEnsRegistry {
    struct Record {
        address owner;
        address resolver;
    }

    mapping(bytes32 => Record) private records;

    constructor() {
        records[bytes32(0)].owner = msg.sender;
    }

    modifier onlyOwner(bytes32 node) {
        require(records[node].owner == msg.sender, "TestEnsRegistry: not the node's owner");
        _;
    }

    function owner(bytes32 node) external view returns (address) {
        return records[node].owner;
    }

    function resolver(bytes32 node) external view returns (address) {
        return records[node].resolver;
    }

    function setOwner(bytes32 node, address owner_) external onlyOwner(node) {
        records[node].owner = owner_;
    }

    function setSubnodeOwner(bytes32 node, bytes32 label, address owner_)
        external
        onlyOwner(node)
        returns (bytes32 subnode)
    {
        subnode = keccak256(abi.encodePacked(node, label));
        records[subnode].owner = owner_;
    }

    function setResolver(bytes32 node, address resolver_) external onlyOwner(node) {
        records[node].resolver = resolver_;
    }
}

contract TestEnsResolver {
    TestEnsRegistry public immutable registry;
    mapping(bytes32 => address) public addr;
    mapping(bytes32 => string) public name;

    constructor(TestEnsRegistry registry_) {
        registry = registry_;
    }

    modifier onlyOwner(bytes32 node) {
        require(registry.owner(node) == msg.sender, "TestEnsResolver: not the node's owner");
        _;
    }

    function setAddr(bytes32 node, address addr_) external onlyOwner(node) {
        addr[node] = addr_;
    }

    function setName(bytes32 node, string calldata name_) external onlyOwner(node) {
        name[node] = name_;
    }
}
